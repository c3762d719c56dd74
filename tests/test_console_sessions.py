"""Console sessions end for good: a cookie captured before logout, a password change or the
administrator's disabling is refused afterwards, and every session of that administrator ends
at once (test client, on SQLite and PostgreSQL)."""
import pytest
from sqlalchemy import select

from app.console import admins
from app.extensions import db
from app.models import Admin

from .console_helpers import PASSWORD, Console, fresh_context_per_request
from .factories import events

COOKIE = "ostiary_console"


@pytest.fixture(autouse=True)
def _requests_on_their_own(app):
    fresh_context_per_request(app)


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def captured(app, console):
    """Another browser holding a copy of the console's session cookie, as a thief would."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, console.client.get_cookie(COOKIE).value)
    assert thief.get("/console/pending").status_code == 200  # the copy works, to begin with
    return thief


def refused(client) -> bool:
    response = client.get("/console/pending")
    return response.status_code == 302 and response.headers["Location"].startswith("/console/login")


def test_a_cookie_captured_before_logout_is_refused_after_it(app, console):
    thief = captured(app, console)
    console.post("/console/logout", page="/console/pending")
    assert refused(thief)
    assert refused(console.client)


def test_a_second_session_of_the_same_admin_ends_when_the_first_logs_out(app, console):
    other = Console(app.test_client())
    assert other.login().status_code == 303
    assert other.client.get("/console/pending").status_code == 200
    console.post("/console/logout", page="/console/pending")
    assert refused(other.client)
    assert other.login().status_code == 303  # logging in again makes a new, working session
    assert other.client.get("/console/pending").status_code == 200


def test_a_cookie_captured_before_a_password_change_is_refused_after_it(app, console, runner):
    thief = captured(app, console)
    changed = runner.invoke(args=["admin", "set-password", "alice", "--password-stdin"],
                            input="a brand new passphrase\n")
    assert changed.exit_code == 0, changed.output
    assert refused(thief)
    assert refused(console.client)
    assert console.login().status_code == 401  # the old password is gone
    assert console.login(password="a brand new passphrase").status_code == 303
    event = events("admin.password_changed")[0]
    assert event.actor.startswith("cli:") and event.data == {"username": "alice"}
    assert "brand new" not in str(event.data)


def test_a_cookie_captured_before_disabling_is_refused_after_it(app, console, runner):
    thief = captured(app, console)
    disabled = runner.invoke(args=["admin", "disable", "alice", "--reason", "left the team"])
    assert disabled.exit_code == 0, disabled.output
    assert refused(thief)
    assert refused(console.client)
    event = events("admin.disabled")[0]
    assert event.reason == "left the team" and event.data == {"username": "alice"}


@pytest.mark.parametrize("password, reason", [(PASSWORD, "administrator is disabled"),
                                               ("not the password at all", "wrong username or password")])
def test_a_disabled_admin_cannot_log_in_and_is_told_only_wrong_username_or_password(app, client, password, reason):
    Console(client).create_admin()
    admins.disable("alice", "cli:test", "on leave")
    response = Console(app.test_client()).login(password=password)
    assert response.status_code == 401
    assert b"Wrong username or password." in response.data
    assert events("admin.login_failed", only="reason") == [reason]
    assert not events("admin.login")
    admins.enable("alice", "cli:test")
    assert Console(app.test_client()).login().status_code == 303
    assert events("admin.enabled")[0].actor == "cli:test"


def test_disable_enable_and_set_password_refuse_what_does_not_apply(runner, client):
    Console(client).create_admin()
    assert runner.invoke(args=["admin", "disable", "nobody"]).exit_code == 1
    assert runner.invoke(args=["admin", "enable", "alice"]).exit_code == 1  # not disabled
    assert runner.invoke(args=["admin", "disable", "alice"]).exit_code == 0
    again = runner.invoke(args=["admin", "disable", "alice"])
    assert again.exit_code == 1 and "already disabled" in again.output
    short = runner.invoke(args=["admin", "set-password", "alice", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert runner.invoke(args=["admin", "enable", "alice"]).exit_code == 0


def test_logout_raises_the_session_generation_and_is_audited(app, console):
    before = db.session.execute(select(Admin.session_generation)).scalar_one()
    console.post("/console/logout", page="/console/pending")
    db.session.expire_all()
    assert db.session.execute(select(Admin.session_generation)).scalar_one() == before + 1
    assert events("admin.logout")[0].actor == "admin:alice"
