"""Failed console logins are counted in the database, per account and per address, so the limits
hold across workers and instances (test client, on SQLite and PostgreSQL)."""
import pytest
from sqlalchemy import select

from app import create_app
from app.console import admins
from app.extensions import db
from app.models import LoginFailure
from app.support import clock, passwords

from .console_helpers import PASSWORD, Console, fresh_context_per_request
from .factories import events
from .servers import LEAST_PASSWORD_COST, TEST_SECRETS

# The limiter's own per-address login limit (per process with memory://) is lifted, so what is
# tested is the database count alone, which must hold whatever the limiter's storage.
LIFTED = {"LOGIN_RATE_LIMIT": "100000 per minute"}
WRONG = "not the right password"


@pytest.fixture(autouse=True)
def _requests_on_their_own(app):
    fresh_context_per_request(app)


@pytest.fixture
def second_instance(app, settings):
    """Another app on the same database, as another gunicorn worker or instance would be."""
    other = create_app({"INSTANCE_PATH": app.config["INSTANCE_PATH"], "DATABASE_URL": app.config["DATABASE_URL"],
                        **TEST_SECRETS, **LEAST_PASSWORD_COST, "RATELIMIT_STORAGE_URI": "memory://", **settings},
                       check=False)
    other.config["TESTING"] = True
    fresh_context_per_request(other)
    yield other
    with other.app_context():
        db.engine.dispose()


def attempt(app, password, username="alice", address="198.51.100.7"):
    """One login from a browser of its own at ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Console(client, username).login(password=password)


class CountingHasher:
    """The one argon2 hasher, counting its password checks."""

    def __init__(self, hasher):
        self.hasher, self.verified = hasher, 0

    def verify(self, *args):
        self.verified += 1
        return self.hasher.verify(*args)

    def __getattr__(self, name):
        return getattr(self.hasher, name)


@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ADDRESS": 10}])
def test_wrong_passwords_from_one_address_are_refused_after_the_limit_across_two_instances(
        app, second_instance, settings):
    Console(app.test_client()).create_admin()
    limit = settings["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    codes = [attempt((app, second_instance)[i % 2], WRONG).status_code for i in range(30)]
    assert codes == [401] * limit + [429] * (30 - limit)
    refused = attempt(second_instance, PASSWORD)  # the right password too, from that address
    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.data
    assert 0 < int(refused.headers["Retry-After"]) <= app.config["LOGIN_FAILURE_WINDOW"]
    assert len(events("admin.login_failed")) == limit
    throttled = events("admin.login_throttled")
    assert len(throttled) == 30 - limit + 1
    assert {(e.decision, e.reason, e.address) for e in throttled} == {
        ("deny", "too many failed logins from this address", "198.51.100.7")}
    assert attempt(app, PASSWORD, address="198.51.100.8").status_code == 303  # another address


@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5}])
def test_one_account_is_refused_after_its_limit_from_many_addresses_without_a_password_check(
        app, client, settings, monkeypatch):
    Console(client).create_admin()
    Console(client, "bob").create_admin()
    limit = settings["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    for i in range(limit):
        assert attempt(app, WRONG, address=f"203.0.113.{i + 1}").status_code == 401
    hasher = CountingHasher(passwords.hasher())
    monkeypatch.setattr(passwords, "hasher", lambda: hasher)
    refused = attempt(app, PASSWORD, address="203.0.113.200")  # a fresh address, the right password
    assert refused.status_code == 429 and hasher.verified == 0
    assert events("admin.login_throttled")[0].reason == "too many failed logins for this account"
    assert attempt(app, PASSWORD, "bob", address="203.0.113.1").status_code == 303  # other accounts log in
    assert hasher.verified == 1


@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ADDRESS": 3}])
def test_failures_leave_the_count_when_the_window_has_passed_and_are_swept(app, client, settings):
    Console(client).create_admin()
    for _ in range(3):
        assert attempt(app, WRONG).status_code == 401
    assert attempt(app, PASSWORD).status_code == 429
    clock.advance(app.config["LOGIN_FAILURE_WINDOW"] + 1)
    assert attempt(app, WRONG, address="192.0.2.1").status_code == 401  # sweeps the old rows
    assert db.session.execute(select(LoginFailure.address)).scalars().all() == ["192.0.2.1"]
    assert attempt(app, PASSWORD).status_code == 303


@pytest.mark.parametrize("settings", [LIFTED])
def test_a_successful_login_keeps_the_failures_of_other_addresses(app, client, settings):
    Console(client).create_admin()
    for address in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        assert attempt(app, WRONG, address=address).status_code == 401
    assert attempt(app, WRONG, "bob", address="192.0.2.2").status_code == 401
    assert attempt(app, PASSWORD, address="192.0.2.2").status_code == 303
    rows = db.session.execute(select(LoginFailure.username, LoginFailure.address)
                              .order_by(LoginFailure.id)).all()
    assert rows == [("alice", "192.0.2.1"), ("alice", "192.0.2.1"), ("bob", "192.0.2.2")]


@pytest.mark.parametrize("settings", [LIFTED])
def test_a_new_password_clears_the_accounts_failures(app, client, settings):
    Console(client).create_admin()
    for i in range(3):
        attempt(app, WRONG, address=f"192.0.2.{i + 1}")
    admins.set_password("alice", "another long passphrase", "cli:test")
    assert db.session.execute(select(LoginFailure)).first() is None
