"""Sign-on through the OpenID provider, where no provider is needed: the claim rules
(``oidc.admit``), finding and creating people by (issuer, subject) (``oidc.sign_in``, on SQLite
and PostgreSQL), the settings that stop start-up, the sign-in page's button, a provider that
cannot be reached, and the safe fetcher's adapter that Authlib's session calls through
(``fetch.guard``), against a real HTTP server on loopback. The whole flow against a real provider
is tests/e2e/test_people_oidc.py."""
from __future__ import annotations

import contextlib
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from app import StartupError, cli, create_app
from app.extensions import db
from app.models import Person
from app.people import accounts, oidc
from app.support import fetch

from .factories import at_once, count, events
from .servers import TEST_SECRETS, free_port, serve_in_background

ISSUER = "https://id.example.com"
RULES = oidc.Rules(allowed_domains=frozenset({"example.com"}), allowed_groups=frozenset(), groups_claim="groups")
GOOD = {"sub": "248289761001", "email": "jane@example.com", "email_verified": True, "name": "Jane Doe",
        "groups": ["staff", "agent-users"]}


# ---- who may sign in ------------------------------------------------------------------------

def test_a_verified_address_in_an_allowed_domain_is_admitted():
    admitted = oidc.admit(GOOD, RULES)
    assert admitted == oidc.Admitted("248289761001", "jane@example.com", "Jane Doe", ["agent-users", "staff"])


@pytest.mark.parametrize("change, words", [
    ({"sub": None}, "did not say who you are"),
    ({"sub": ""}, "did not say who you are"),
    ({"sub": "x" * 256}, "did not say who you are"),
    ({"sub": 7}, "did not say who you are"),
    ({"email": None}, "did not tell this server your email address"),
    ({"email": "not an address"}, "did not tell this server your email address"),
    ({"email": ["jane@example.com"]}, "did not tell this server your email address"),
    ({"email_verified": None}, "does not say that your email address jane@example.com is verified"),
    ({"email_verified": False}, "is verified"),
    ({"email_verified": "true"}, "is verified"),  # OIDC Core §5.1: a boolean
    ({"email": "jane@elsewhere.example"}, "People with an address at elsewhere.example may not sign in here."),
    ({"email": "jane@sub.example.com"}, "at sub.example.com may not"),  # a domain, not its subdomains
    ({"email": "jane@example.com.evil.example"}, "at example.com.evil.example may not"),
    ({"groups": {"staff": True}}, "not a list of group names"),
    ({"groups": ["staff", 7]}, "not a list of group names"),
    ({"groups": ["staff\n"]}, "not a list of group names"),
    ({"groups": [f"g{i}" for i in range(oidc.MAX_GROUPS + 1)]}, "more than 200 groups"),
])
def test_the_rules_refuse_with_a_reason_the_person_can_read(change, words):
    claims = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(oidc.Refused) as refused:
        oidc.admit(claims, RULES, "Example Org")
    assert words in str(refused.value)
    assert refused.value.status == 403


def test_a_domain_is_compared_without_case():
    assert oidc.admit({**GOOD, "email": "Jane@EXAMPLE.com"}, RULES).email == "Jane@EXAMPLE.com"


@pytest.mark.parametrize("domains, groups, claims, admitted", [
    ((), ("agent-users",), GOOD, True),
    ((), ("agent-users",), {**GOOD, "groups": ["staff"]}, False),
    ((), ("agent-users",), {k: v for k, v in GOOD.items() if k != "groups"}, False),
    ((), ("agent-users",), {**GOOD, "groups": "agent-users"}, True),  # one group, as a string
    (("example.com",), ("agent-users",), GOOD, True),  # both rules: both must pass
    (("example.com",), ("agent-users",), {**GOOD, "email": "jane@elsewhere.example"}, False),
    (("example.com",), ("agent-users",), {**GOOD, "groups": ["staff"]}, False),
])
def test_an_allowed_group_rule(domains, groups, claims, admitted):
    rules = oidc.Rules(frozenset(domains), frozenset(groups), "groups")
    if admitted:
        assert oidc.admit(claims, rules).subject == GOOD["sub"]
    else:
        with pytest.raises(oidc.Refused, match="not in a group|may not sign in here"):
            oidc.admit(claims, rules)


def test_the_groups_claim_may_have_another_name():
    rules = oidc.Rules(frozenset(), frozenset({"admins"}), "roles")
    assert oidc.admit({**GOOD, "roles": ["admins"]}, rules).groups == ["admins"]


@pytest.mark.parametrize("name, shown", [
    ("Jane Doe", "Jane Doe"), ("  Jane\u202e Doe\x00 ", "Jane Doe"), ("", None), (None, None), (["x"], None),
    ("x" * 300, "x" * accounts.MAX_DISPLAY_NAME),
])
def test_a_name_is_kept_printable_and_short(name, shown):
    assert oidc.admit({**GOOD, "name": name}, RULES).display_name == shown


# ---- finding and creating the person --------------------------------------------------------

def admitted(**change) -> oidc.Admitted:
    return oidc.Admitted(**{"subject": "s-1", "email": "jane@example.com", "display_name": "Jane",
                            "groups": ["staff"], **change})


def stored(issuer=ISSUER, subject="s-1") -> Person:
    return db.session.execute(select(Person).where(Person.issuer == issuer, Person.subject == subject)).scalar_one()


def test_a_new_person_is_created_by_issuer_and_subject_and_audited(app):
    signed_in = oidc.sign_in(ISSUER, admitted())
    person = stored()
    assert (person.source, person.username, person.email, person.email_verified, person.groups) == (
        "oidc", None, "jane@example.com", True, ["staff"])
    assert signed_in.public_id == person.public_id and signed_in.username is None
    assert person.last_login_at is not None and person.password_hash is None
    [created] = events("person.created")
    assert created.actor == f"person:{person.public_id}"
    assert created.data == {"sub": person.public_id, "source": "oidc", "issuer": ISSUER, "subject": "s-1",
                            "email": "jane@example.com", "groups": ["staff"]}
    [signed] = events("person.signed_in")
    assert signed.decision == "allow" and signed.data["source"] == "oidc"


def test_the_same_person_is_found_again_and_brought_up_to_date(app):
    first = oidc.sign_in(ISSUER, admitted())
    again = oidc.sign_in(ISSUER, admitted(email="jane.doe@example.com", display_name="Jane Doe", groups=["ops"]))
    assert again.public_id == first.public_id and count(Person) == 1
    person = stored()
    assert (person.email, person.display_name, person.groups) == ("jane.doe@example.com", "Jane Doe", ["ops"])
    [updated] = events("person.updated")
    assert updated.data["changed"] == {"email": "jane.doe@example.com", "display_name": "Jane Doe",
                                       "groups": ["ops"]}
    oidc.sign_in(ISSUER, admitted(email="jane.doe@example.com", display_name="Jane Doe", groups=["ops"]))
    assert len(events("person.updated")) == 1  # nothing changed, nothing recorded
    assert len(events("person.signed_in")) == 3


def test_a_person_is_never_found_by_email(app):
    accounts.create("jane", "a long enough password for jane", "admin:test", email="jane@example.com",
                    email_verified=True)
    oidc.sign_in(ISSUER, admitted())
    oidc.sign_in("https://other-id.example.com", admitted())
    assert count(Person) == 3  # the local jane, and one person per issuer
    local = db.session.execute(select(Person).where(Person.username == "jane")).scalar_one()
    assert local.issuer is None and local.last_login_at is None
    assert stored().public_id != stored("https://other-id.example.com").public_id != local.public_id


def test_a_disabled_person_cannot_sign_in_through_the_provider(app):
    signed_in = oidc.sign_in(ISSUER, admitted())
    accounts.disable(signed_in.public_id, "admin:test", "left")  # by sub: they have no username
    with pytest.raises(oidc.Refused, match="disabled"):
        oidc.sign_in(ISSUER, admitted(groups=["ops"]))
    [refused] = events("person.sign_in_refused")
    assert refused.decision == "deny" and refused.reason == accounts.DISABLED
    assert stored().groups == ["staff"]  # nothing of the refused sign-in was written
    assert len(events("person.signed_in")) == 1


def test_a_person_from_the_provider_has_no_password_here(app, runner):
    signed_in = oidc.sign_in(ISSUER, admitted())
    ran = runner.invoke(args=["user", "set-password", signed_in.public_id, "--password-stdin"],
                        input="a long enough new password\n")
    assert ran.exit_code == 1 and "has no password here" in ran.output
    assert stored().password_hash is None


def test_a_first_sign_in_twice_at_once_makes_one_person(app):
    results = at_once(app, lambda: oidc.sign_in(ISSUER, admitted()).public_id, copies=4)
    assert len(results) == 4 and len(set(results)) == 1
    assert count(Person) == 1 and len(events("person.created")) == 1


# ---- settings and pages ---------------------------------------------------------------------

def build(tmp_path, **settings):
    return create_app({"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/o.db", **TEST_SECRETS,
                       "RATELIMIT_STORAGE_URI": "memory://", "PEOPLE_OIDC_ISSUER": ISSUER,
                       "PEOPLE_OIDC_CLIENT_ID": "ostiary", "PEOPLE_OIDC_CLIENT_SECRET": "s" * 32,
                       "PEOPLE_OIDC_ALLOWED_DOMAINS": ["example.com"], **settings}, check=False)


@pytest.mark.parametrize("settings, words", [
    ({"PEOPLE_OIDC_CLIENT_ID": ""}, "OSTIARY_PEOPLE_OIDC_CLIENT_ID must be set"),
    ({"PEOPLE_OIDC_CLIENT_SECRET": ""}, "OSTIARY_PEOPLE_OIDC_CLIENT_SECRET must be set"),
    ({"PEOPLE_OIDC_ALLOWED_DOMAINS": []}, "set OSTIARY_PEOPLE_OIDC_ALLOWED_DOMAINS or"),
    ({"PEOPLE_OIDC_ISSUER": "http://id.example.com"}, "must use https"),
    ({"PEOPLE_OIDC_ISSUER": "https://10.0.0.7"}, "private or reserved"),
    ({"PEOPLE_OIDC_ISSUER": "http://127.0.0.1:9"}, "loopback"),
    ({"PEOPLE_OIDC_ISSUER": "https://id.example.com/?tenant=1"}, "must not have a query"),
    ({"PEOPLE_OIDC_SCOPES": ["email"]}, "must include openid"),
])
def test_settings_that_cannot_work_stop_start_up(tmp_path, settings, words):
    with pytest.raises(StartupError, match=re.escape(words)):
        build(tmp_path, **settings)


def test_the_sign_in_page_offers_the_provider_only_when_configured(app, client, tmp_path):
    assert "Sign in with" not in client.get("/signin").get_data(as_text=True)
    assert client.get("/signin/oidc").status_code == 404
    assert client.get("/signin/oidc/callback").status_code == 404
    configured = build(tmp_path, PEOPLE_OIDC_NAME="Example Org").test_client()
    page = configured.get("/signin?next=/my/agents").get_data(as_text=True)
    assert '<a href="/signin/oidc?next=/my/agents">Sign in with Example Org</a>' in page
    assert "Sign in with id.example.com" in build(tmp_path / "x").test_client().get("/signin").get_data(as_text=True)


@contextlib.contextmanager
def serving(tmp_path, **settings):
    """An app with sign-on configured, its database made, in an app context."""
    built = build(tmp_path, FETCH_ALLOW_HTTP_LOOPBACK=True, **settings)
    cli.initialise(built)
    fetch.clear_cache()
    with built.app_context():
        yield built.test_client()
        db.session.remove()
        db.engine.dispose()


def test_a_provider_that_cannot_be_reached_is_a_clear_page_and_audited(tmp_path):
    with serving(tmp_path, PEOPLE_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}") as client:
        response = client.get("/signin/oidc")
        assert response.status_code == 502 and "Location" not in response.headers
        assert "cannot be reached now" in response.get_data(as_text=True)
        [failed] = events("person.sign_in_failed")
        assert failed.decision == "deny" and "cannot be reached" in failed.reason


def test_the_sign_in_goes_to_the_provider_with_pkce_state_and_nonce(tmp_path, peer):
    with serving(tmp_path, PEOPLE_OIDC_ISSUER=peer.url) as client:
        response = client.get("/signin/oidc?next=/my/agents")
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == peer.url + "/auth"
        query = {name: values[0] for name, values in parse_qs(location.query).items()}
        assert query["response_type"] == "code" and query["client_id"] == "ostiary"
        assert query["redirect_uri"] == "http://127.0.0.1:5000/signin/oidc/callback"
        assert query["scope"] == "openid email profile" and query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43 and query["state"] and query["nonce"]


@pytest.mark.parametrize("change, words", [
    ({"issuer": "https://evil.example"}, "names another issuer"),
    ({"id_token_signing_alg_values_supported": ["none", "HS256"]}, "signs ID tokens with none of"),
    ({"token_endpoint": None}, "has no token_endpoint"),
])
def test_a_discovery_document_that_cannot_be_trusted_is_refused(tmp_path, peer, change, words):
    peer.discovery = {k: v for k, v in {**peer.discovery, **change}.items() if v is not None}
    with serving(tmp_path, PEOPLE_OIDC_ISSUER=peer.url) as client:
        response = client.get("/signin/oidc")
        assert response.status_code == 502 and "Location" not in response.headers
        assert words in response.get_data(as_text=True)
        assert words in events("person.sign_in_failed")[0].reason


# ---- the fetcher's adapter, for Authlib's session -------------------------------------------

class Peer(BaseHTTPRequestHandler):
    """A loopback HTTP server: /ok answers JSON (with the Host it was sent), /moved redirects,
    /big is larger than FETCH_MAX_BYTES, and the discovery document is ``server.discovery``."""

    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.end_headers()
            return
        if self.path == "/.well-known/openid-configuration":
            body = json.dumps(self.server.discovery).encode()
        elif self.path == "/ok":
            body = json.dumps({"host": self.headers["Host"]}).encode()
        else:
            body = b"x" * 100_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def peer():
    """The server; its ``url``, and the ``discovery`` document it serves (change it at will)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    url = f"http://localhost:{server.server_address[1]}"
    server.discovery = {"issuer": url, "authorization_endpoint": url + "/auth", "token_endpoint": url + "/token",
                        "jwks_uri": url + "/jwks", "id_token_signing_alg_values_supported": ["RS256"]}
    server.url = url
    thread = serve_in_background(server)
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def loopback(app):
    app.config["FETCH_ALLOW_HTTP_LOOPBACK"] = True


def test_a_guarded_session_calls_the_checked_address_with_the_host_it_was_given(loopback, peer):
    with fetch.guard(requests.Session()) as session:
        answer = session.get(peer.url + "/ok")
    assert answer.status_code == 200 and answer.json() == {"host": peer.url.removeprefix("http://")}


@pytest.mark.parametrize("path, words", [
    ("/moved", "answered HTTP 302 (redirects are not followed)"),
    ("/big", "larger than 65536 bytes"),
])
def test_a_guarded_session_follows_no_redirect_and_reads_no_more_than_the_limit(loopback, peer, path, words):
    with fetch.guard(requests.Session()) as session, pytest.raises(fetch.FetchError, match=re.escape(words)):
        session.get(peer.url + path)


@pytest.mark.parametrize("url, words", [
    ("https://10.0.0.1/token", "private or reserved"),
    ("https://169.254.169.254/latest", "metadata"),
    ("http://api.example.com/token", "must use https"),
    ("https://user:pw@id.example.com/token", "credentials"),
    ("http://127.0.0.1:9/token", "loopback"),  # not admitted without FETCH_ALLOW_HTTP_LOOPBACK
])
def test_a_guarded_session_refuses_what_the_fetcher_refuses(app, url, words):
    with fetch.guard(requests.Session()) as session, pytest.raises(fetch.FetchError, match=words):
        session.post(url, data={"code": "secret-code"})


def test_a_guarded_session_takes_no_proxy_from_the_environment(loopback, peer, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:3128")
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:3128")
    with fetch.guard(requests.Session()) as session:
        assert session.get(peer.url + "/ok").status_code == 200
