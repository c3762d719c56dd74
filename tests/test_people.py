"""People, apart from administrators: ``ostiary user …``, the sign-in pages, the person's session
and its cookie, which the console never reads (nor the people's pages the console's), the
failed-sign-in limits, and ``next`` that never leaves this server (test client, on SQLite and
PostgreSQL)."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.http.sessions import Realm, RealmSessionInterface
from app.models import LoginFailure, Person
from app.people import accounts
from app.people.session import require_person, safe_next, sign_in_url
from app.support import clock, passwords

from .console_helpers import PASSWORD, Console, csrf_token, fresh_context_per_request
from .factories import count, events

COOKIE = "ostiary_person"
CONSOLE_COOKIE = "ostiary_console"
LIFTED = {"LOGIN_RATE_LIMIT": "100000 per minute"}
WRONG = "not the right password"


@pytest.fixture(autouse=True)
def _requests_on_their_own(app):
    fresh_context_per_request(app)


class Browser:
    """A person's browser without JavaScript, on the test client."""

    def __init__(self, client, username="alice", address="198.51.100.7"):
        self.client, self.username = client, username
        client.environ_base["REMOTE_ADDR"] = address

    def sign_in(self, password=PASSWORD, username=None, next=None):
        query = {"next": next} if next is not None else {}
        page = self.client.get("/signin", query_string=query)
        return self.client.post("/signin", query_string=query, data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username or self.username, "password": password})

    def sign_out(self):
        page = self.client.get("/my/")
        return self.client.post("/signout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})

    def signed_in(self) -> bool:
        response = self.client.get("/my/")
        if response.status_code == 200:
            return True
        assert response.status_code == 303 and response.headers["Location"].startswith("/signin")
        return False


def make_person(username="alice", password=PASSWORD, **options) -> Person:
    return accounts.create(username, password, "cli:test", **options)


@pytest.fixture
def alice(app):
    """The person alice, as ids (the row itself leaves its session with the first request)."""
    person = make_person(email="alice@example.com", display_name="Alice Example")
    return SimpleNamespace(id=person.id, public_id=person.public_id)


@pytest.fixture
def browser(app, alice):
    browser = Browser(app.test_client())
    assert browser.sign_in().status_code == 303
    return browser


def copied(app, browser, name=COOKIE, as_name=None):
    """Another browser holding a copy of ``browser``'s cookie ``name`` (sent as ``as_name``)."""
    other = app.test_client()
    other.set_cookie(as_name or name, browser.client.get_cookie(name).value)
    return other


def refused_person(client) -> bool:
    return Browser(client).signed_in() is False


def refused_console(client) -> bool:
    response = client.get("/console/pending")
    return response.status_code == 302 and response.headers["Location"].startswith("/console/login")


# --- ostiary user … ---------------------------------------------------------------------------

def test_user_create_makes_a_local_person_with_a_random_sub_and_an_argon2id_hash(runner):
    made = runner.invoke(args=["user", "create", "alice", "--email", "alice@example.com", "--name", "Alice E",
                               "--group", "finance", "--group", "audit", "--password-stdin"],
                         input=PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    person = db.session.execute(select(Person)).scalar_one()
    assert made.output.strip() == f"created user alice (sub {person.public_id})"
    assert (person.username, person.email, person.email_verified, person.display_name, person.source,
            person.groups) == ("alice", "alice@example.com", False, "Alice E", "local", ["audit", "finance"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", person.public_id) and "alice" not in person.public_id
    assert person.password_hash.startswith("$argon2id$") and PASSWORD not in person.password_hash
    assert person.disabled_at is None and person.session_generation == 0
    event = events("person.created")[0]
    assert event.actor.startswith("cli:")
    assert event.data == {"username": "alice", "sub": person.public_id, "groups": ["audit", "finance"]}
    assert PASSWORD not in json.dumps(event.data)


def test_every_person_gets_a_sub_of_their_own(app):
    subs = {make_person(f"user{i}").public_id for i in range(5)}
    assert len(subs) == 5


def test_a_password_hashed_at_another_cost_is_rehashed_at_its_next_sign_in(app, client):
    """The cost is a setting: a hash keeps the cost it was made with, and the next successful
    sign-in stores one at today's (the test suite runs at the floor, deployments at the default)."""
    make_person()
    app.config["PASSWORD_MEMORY_KIB"] = 24 * 1024
    assert Browser(app.test_client()).sign_in().status_code == 303
    stored = db.session.execute(select(Person.password_hash).where(Person.username == "alice")).scalar_one()
    assert "m=24576,t=2," in stored and passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "!")


def test_people_and_administrators_are_apart(app, client):
    Console(client).create_admin()  # an administrator named alice, with the same password
    make_person()
    assert Browser(app.test_client()).sign_in().status_code == 303
    assert Console(app.test_client()).login().status_code == 303
    accounts.disable("alice", "cli:test", "left")
    assert Console(app.test_client()).login().status_code == 303  # the administrator is not disabled
    assert Browser(app.test_client()).sign_in().status_code == 401


@pytest.mark.parametrize("args, message", [
    (["bad name"], "username must be"),
    (["alice", "--email", "not an address"], "is not an email address"),
    (["alice", "--email-verified"], "no email address to call verified"),
    (["alice", "--group", "two words"], "groups, each"),
    (["alice", "--name", "tab\there"], "printable"),
])
def test_user_create_refuses_what_is_not_a_person(runner, args, message):
    made = runner.invoke(args=["user", "create", *args, "--password-stdin"], input=PASSWORD + "\n")
    assert made.exit_code == 1 and message in made.output, made.output
    assert count(Person) == 0 and not events("person.created")


def test_user_create_refuses_a_short_password_and_a_taken_username(runner):
    short = runner.invoke(args=["user", "create", "alice", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert runner.invoke(args=["user", "create", "alice", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    again = runner.invoke(args=["user", "create", "alice", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code == 1 and "already exists" in again.output
    assert count(Person) == 1 and len(events("person.created")) == 1


def test_disable_enable_and_set_password_refuse_what_does_not_apply(runner, alice):
    assert runner.invoke(args=["user", "disable", "nobody"]).exit_code == 1
    assert runner.invoke(args=["user", "set-password", "nobody", "--password-stdin"],
                         input=PASSWORD + "\n").exit_code == 1
    assert runner.invoke(args=["user", "enable", "alice"]).exit_code == 1  # not disabled
    assert runner.invoke(args=["user", "disable", "alice", "--reason", "left"]).exit_code == 0
    again = runner.invoke(args=["user", "disable", "alice"])
    assert again.exit_code == 1 and "already disabled" in again.output
    short = runner.invoke(args=["user", "set-password", "alice", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert runner.invoke(args=["user", "enable", "alice"]).exit_code == 0
    assert [(e.event_type, e.reason) for e in events() if e.event_type.startswith("person.")] == [
        ("person.created", None), ("person.disabled", "left"), ("person.enabled", None)]


def test_user_list_shows_everyone_as_lines_or_json(runner, alice):
    make_person("bob", groups=["ops"])
    accounts.disable("bob", "cli:test", "on leave")
    lines = runner.invoke(args=["user", "list"])
    assert lines.exit_code == 0
    assert lines.output.splitlines() == [f"alice  {alice.public_id}  alice@example.com  -  active",
                                         f"bob  {accounts._get('bob').public_id}  -  ops  disabled"]
    listed = json.loads(runner.invoke(args=["user", "list", "--json"]).output)
    assert [(p["username"], p["name"], p["groups"], p["disabled_at"] is None) for p in listed] == [
        ("alice", "Alice Example", [], True), ("bob", None, ["ops"], False)]
    assert "password" not in json.dumps(listed)


# --- signing in ---------------------------------------------------------------------------------

def test_sign_in_page_has_a_csrf_token_security_headers_and_no_inline_script_or_style(client):
    page = client.get("/signin")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and csrf_token(html)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert 'for="username"' in html and 'for="password"' in html


def test_signing_in_opens_a_person_session_and_audits_it(app, alice):
    browser = Browser(app.test_client())
    response = browser.sign_in()
    assert response.status_code == 303 and response.headers["Location"] == "/my/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # the test issuer is http on loopback
    me = browser.client.get("/my/")
    assert me.status_code == 200 and b"Signed in as Alice Example" in me.data
    assert alice.public_id.encode() in me.data
    assert browser.client.get_cookie(CONSOLE_COOKIE) is None
    event = events("person.signed_in")[0]
    assert (event.actor, event.decision, event.data) == ("person:alice", "allow", {"sub": alice.public_id})
    assert db.session.get(Person, alice.id).last_login_at is not None


@pytest.mark.parametrize("settings", [{"ISSUER": "https://auth.example.com"}])
def test_the_person_cookie_is_secure_when_the_issuer_is_https(app, alice, settings):
    assert "Secure" in Browser(app.test_client()).sign_in().headers["Set-Cookie"]


def _answer(response) -> str:
    """The page without its values (the CSRF token, the username typed)."""
    return re.sub(r'value="[^"]*"', "", response.get_data(as_text=True))


def test_unknown_user_wrong_password_and_disabled_get_the_same_answer(app, alice):
    make_person("carol")
    accounts.disable("carol", "cli:test", "left")
    wrong = Browser(app.test_client()).sign_in(password=WRONG)
    unknown = Browser(app.test_client()).sign_in(username="bob")
    disabled = Browser(app.test_client(), "carol").sign_in()
    assert wrong.status_code == unknown.status_code == disabled.status_code == 401
    assert b"Wrong username or password." in wrong.data
    assert _answer(wrong) == _answer(unknown) == _answer(disabled)
    assert events("person.sign_in_failed", only="reason") == [
        "wrong username or password", "wrong username or password", "person is disabled"]
    assert not events("person.signed_in")


def test_a_sign_in_without_its_csrf_token_is_refused(app, alice):
    client = app.test_client()
    client.get("/signin")
    response = client.post("/signin", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400 and b"CSRF" in response.data
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert not events("person.signed_in") and not events("person.sign_in_failed")
    assert refused_person(client)


def test_a_csrf_token_of_the_console_is_not_one_of_the_sign_in_page(app, alice):
    client = app.test_client()
    token = csrf_token(client.get("/console/login").get_data(as_text=True))
    client.get("/signin")
    response = client.post("/signin", data={"csrf_token": token, "username": "alice", "password": PASSWORD})
    assert response.status_code == 400 and refused_person(client)


def test_a_signed_in_person_asking_for_the_sign_in_page_goes_on(browser):
    response = browser.client.get("/signin", query_string={"next": "/authorize?client_id=a"})
    assert response.status_code == 303 and response.headers["Location"] == "/authorize?client_id=a"


def test_nothing_of_the_session_before_the_sign_in_survives_it(app, alice):
    browser = Browser(app.test_client())
    before = browser.client.get("/signin")
    token = csrf_token(before.get_data(as_text=True))
    browser.sign_in()
    after = csrf_token(browser.client.get("/my/").get_data(as_text=True))
    assert after != token
    # The token of the session before is no token of this one: signing out with it is refused.
    assert browser.client.post("/signout", data={"csrf_token": token}).status_code == 400
    assert browser.signed_in()


# --- where a sign-in goes next --------------------------------------------------------------

def test_a_page_that_needs_a_person_sends_to_the_sign_in_page_and_back(app, alice):
    browser = Browser(app.test_client())
    response = browser.client.get("/my/")
    assert response.status_code == 303 and response.headers["Location"] == "/signin?next=/my/"
    assert browser.sign_in(next="/my/").headers["Location"] == "/my/"


@pytest.mark.parametrize("target", ["/authorize?client_id=abc&state=x%2Fy&scope=a+b", "/my/", "/my/agents?x=1"])
def test_next_may_be_a_path_on_this_server(app, alice, target):
    assert safe_next(target) == target
    assert Browser(app.test_client()).sign_in(next=target).headers["Location"] == target


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "/\n/evil.example", " /my/", "javascript:alert(1)", "http:evil.example",
    "evil.example", "my/", "/my/\x00", "/" + "a" * 5000, ""])
def test_next_never_leaves_this_server(app, alice, target):
    assert safe_next(target) is None
    with app.test_request_context("/authorize"):
        assert sign_in_url(target) == "/signin"
    response = Browser(app.test_client()).sign_in(next=target)
    assert response.status_code == 303 and response.headers["Location"] == "/my/"


def test_require_person_comes_back_to_a_get_but_not_to_a_post(app, alice):
    with app.test_request_context("/my/agents?page=2"):
        with pytest.raises(HTTPException) as raised:
            require_person()
        assert raised.value.response.status_code == 303
        assert raised.value.response.headers["Location"] == "/signin?next=/my/agents?page%3D2"
    with app.test_request_context("/my/agents?page=2", method="POST"):
        with pytest.raises(HTTPException) as raised:
            require_person()
        assert raised.value.response.headers["Location"] == "/signin"


def test_sign_in_url_keeps_a_local_next(app):
    with app.test_request_context("/authorize"):
        assert sign_in_url("/authorize?client_id=a&state=b") == "/signin?next=/authorize?client_id%3Da%26state%3Db"
        assert sign_in_url("/authorize?") == "/signin?next=/authorize"
        assert sign_in_url(None) == sign_in_url("https://evil.example/") == "/signin"


# --- the person's session ---------------------------------------------------------------------

def test_signing_out_ends_every_session_of_the_person(app, browser):
    thief = copied(app, browser)
    second = Browser(app.test_client())
    assert second.sign_in().status_code == 303
    assert not refused_person(thief)  # the copy works, to begin with
    response = browser.sign_out()
    assert response.status_code == 303 and response.headers["Location"] == "/signin"
    assert refused_person(thief) and refused_person(second.client) and not browser.signed_in()
    assert b"You are signed out." in browser.client.get("/signin").data
    assert events("person.signed_out")[0].actor == "person:alice"
    assert second.sign_in().status_code == 303 and second.signed_in()  # a new session works


def test_signing_out_takes_a_post_with_its_csrf_token(app, browser):
    assert browser.client.get("/signout").status_code == 405
    assert browser.client.post("/signout").status_code == 400
    assert browser.signed_in() and not events("person.signed_out")


@pytest.mark.parametrize("change", ["set-password", "disable"])
def test_a_new_password_or_disabling_ends_every_session(app, browser, runner, change):
    thief = copied(app, browser)
    args = ["user", change, "alice"] + (["--password-stdin"] if change == "set-password" else [])
    done = runner.invoke(args=args, input="a brand new passphrase\n")
    assert done.exit_code == 0, done.output
    assert refused_person(thief) and not browser.signed_in()
    if change == "set-password":
        assert Browser(app.test_client()).sign_in().status_code == 401  # the old password is gone
        assert Browser(app.test_client()).sign_in(password="a brand new passphrase").status_code == 303
        assert "brand new" not in json.dumps(events("person.password_changed")[0].data)
    else:
        assert Browser(app.test_client()).sign_in().status_code == 401
        assert events("person.disabled")[0].actor.startswith("cli:")


def test_a_session_ends_person_session_minutes_after_the_sign_in(app, browser):
    clock.advance(app.config["PERSON_SESSION_MINUTES"] * 60 - 5)
    assert browser.signed_in()  # requests meanwhile do not lengthen it
    clock.advance(10)
    assert not browser.signed_in()


def test_a_cookie_signed_with_another_salt_or_key_or_not_signed_at_all_is_no_session(app, browser):
    value = browser.client.get_cookie(COOKIE).value
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "e30.aaaa.bbbb", "not-a-session"):
        client = app.test_client()
        client.set_cookie(COOKIE, forged)
        assert refused_person(client)


# --- the two realms: a console session is no person session, a person's no console login --------

def test_a_console_session_is_not_a_person_session(app, alice, client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    assert client.get_cookie(COOKIE) is None
    response = client.get("/my/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/signin")
    assert b"Sign in" in client.get("/signin").data
    # The console's cookie, even under the person cookie's name, does not verify with its salt.
    assert refused_person(copied(app, console, CONSOLE_COOKIE, as_name=COOKIE))
    assert refused_person(copied(app, console, CONSOLE_COOKIE))
    assert not refused_console(client)  # and the console login is untouched by all this


def test_a_person_session_is_not_a_console_login(app, browser):
    assert browser.client.get_cookie(CONSOLE_COOKIE) is None
    assert refused_console(browser.client)
    assert refused_console(copied(app, browser, as_name=CONSOLE_COOKIE))
    assert refused_console(copied(app, browser))
    assert browser.signed_in()  # and the person's session is untouched by all this


def test_a_person_session_signed_under_the_consoles_salt_is_refused(app, alice):
    """The same content, signed once with each realm's salt: only the person's verifies."""
    interface = app.session_interface
    content = {"person": {"sub": alice.public_id, "generation": 0, "at": int(clock.timestamp())}}
    for path, accepted in (("/signin", True), ("/console/login", False)):
        signed = interface._serializer(app, interface.realm_of(path)).dumps(content)
        client = app.test_client()
        client.set_cookie(COOKIE, signed)
        assert Browser(client).signed_in() is accepted, path


def test_an_admin_and_a_person_signed_in_in_one_browser_sign_out_apart(app, browser):
    Console(browser.client).create_admin()
    assert Console(browser.client).login().status_code == 303
    assert browser.signed_in() and not refused_console(browser.client)
    browser.sign_out()
    assert not browser.signed_in() and not refused_console(browser.client)


def test_other_paths_open_no_session(app, browser):
    for path in ("/.well-known/oauth-authorization-server", "/jwks.json", "/signinx", "/mything"):
        response = browser.client.get(path)
        assert "Set-Cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", ""), path


def test_session_realms_may_not_share_a_cookie_a_salt_or_a_path():
    interface = RealmSessionInterface()
    interface.add(Realm(cookie="a", salt="a", lifetime=timedelta(minutes=1), prefixes=("/a",)))
    for clash in (Realm(cookie="a", salt="b", lifetime=timedelta(minutes=1), prefixes=("/b",)),
                  Realm(cookie="b", salt="a", lifetime=timedelta(minutes=1), prefixes=("/b",)),
                  Realm(cookie="b", salt="b", lifetime=timedelta(minutes=1), prefixes=("/a/b",))):
        with pytest.raises(ValueError):
            interface.add(clash)
    assert interface.realm_of("/a/x").cookie == "a" and interface.realm_of("/ab") is None


# --- failed sign-ins ------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ADDRESS": 3}])
def test_wrong_passwords_from_one_address_are_refused_after_the_limit(app, alice, settings):
    codes = [Browser(app.test_client()).sign_in(password=WRONG).status_code for _ in range(5)]
    assert codes == [401] * 3 + [429] * 2
    refused = Browser(app.test_client()).sign_in()  # the right password too, from that address
    assert refused.status_code == 429 and b"Too many failed sign-ins" in refused.data
    assert 0 < int(refused.headers["Retry-After"]) <= app.config["LOGIN_FAILURE_WINDOW"]
    assert len(events("person.sign_in_failed")) == 3
    assert {(e.decision, e.reason) for e in events("person.sign_in_throttled")} == {
        ("deny", "too many failed logins from this address")}
    assert Browser(app.test_client(), address="198.51.100.8").sign_in().status_code == 303
    clock.advance(app.config["LOGIN_FAILURE_WINDOW"] + 1)
    assert Browser(app.test_client()).sign_in().status_code == 303


@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ACCOUNT": 3}])
def test_one_account_is_refused_after_its_limit_without_a_password_check(app, alice, settings, monkeypatch):
    for i in range(3):
        assert Browser(app.test_client(), address=f"203.0.113.{i + 1}").sign_in(password=WRONG).status_code == 401
    checked = []
    monkeypatch.setattr(passwords, "verify", lambda *args: checked.append(args) or False)
    assert Browser(app.test_client(), address="203.0.113.200").sign_in().status_code == 429
    assert not checked
    assert events("person.sign_in_throttled")[0].reason == "too many failed logins for this account"
    monkeypatch.undo()
    accounts.set_password("alice", "another long passphrase", "cli:test")  # forgets the failures
    assert Browser(app.test_client()).sign_in(password="another long passphrase").status_code == 303


def console_at(app, username, address):
    console = Console(app.test_client(), username)
    console.client.environ_base["REMOTE_ADDR"] = address
    return console


@pytest.mark.parametrize("settings", [{**LIFTED, "LOGIN_MAX_FAILURES_PER_ADDRESS": 2,
                                       "LOGIN_MAX_FAILURES_PER_ACCOUNT": 2}])
def test_people_and_administrators_count_their_failures_apart(app, alice, client, settings):
    Console(client).create_admin()  # the administrator alice
    for _ in range(2):
        assert Browser(app.test_client()).sign_in(password=WRONG).status_code == 401
    assert Browser(app.test_client()).sign_in().status_code == 429
    # The same name from the same address: the console's count is its own.
    assert console_at(app, "alice", "198.51.100.7").login().status_code == 303
    assert db.session.execute(select(LoginFailure.username, LoginFailure.address)).all() == [
        ("person:alice", "person:198.51.100.7")] * 2

    Console(client, "carol").create_admin()
    make_person("carol")
    for _ in range(2):
        assert console_at(app, "carol", "192.0.2.9").login(password=WRONG).status_code == 401
    assert console_at(app, "carol", "192.0.2.9").login().status_code == 429
    assert Browser(app.test_client(), "carol", address="192.0.2.9").sign_in().status_code == 303


@pytest.mark.parametrize("settings", [{"LOGIN_RATE_LIMIT": "2 per minute"}])
def test_sign_in_is_rate_limited_per_address(app, alice, settings):
    for _ in range(2):
        assert Browser(app.test_client()).sign_in(password=WRONG).status_code == 401
    response = Browser(app.test_client()).sign_in()
    assert response.status_code == 429 and b"Too Many Requests" in response.data
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
