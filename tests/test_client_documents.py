"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client_id that
is an https URL names the client's metadata, fetched through the safe fetcher, validated as a
registration, kept as its HTTP caching says, and gated by the approval queue.

The documents are served for real, by a loopback HTTP server in the test, which the development
override FETCH_ALLOW_HTTP_LOOPBACK lets the fetcher reach (as it lets it reach nothing else)."""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from joserfc import jwt
from sqlalchemy import select

from app.extensions import db
from app.http.serving import Server
from app.models import Client, ClientDocument, Consent
from app.models.client import ACTIVE, PENDING
from app.registration import documents
from app.support import clock, fetch
from app.support.cli import actor

from .asgi_client import call, form_post
from .console_helpers import Console, csrf_token, fresh_context_per_request
from .factories import (
    approve,
    count,
    events,
    make_client,
    new_key,
    public_jwks,
    sqlite_write_lock_is_free,
)
from .servers import LoopbackHTTPServer, serve_in_background
from .test_authorization_code import HIDDEN, PASSWORD, pkce
from .token_actions import ASSERTION_TYPE, ISSUER

API = "https://api.example.com"
NATIVE = "http://127.0.0.1/callback"


class DocumentHost:
    """A real HTTP server on loopback: path -> (status, headers, body); it counts what it serves
    and, on SQLite, whether the database's write lock was free while it answered."""

    def __init__(self):
        self.pages: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.held: dict[str, threading.Event] = {}  # path -> released: answered only once set
        self.holding, self.released_in_time = threading.Event(), []
        self.lock_free: list[bool] = []
        self.database: str | None = None
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.hits[self.path] = host.hits.get(self.path, 0) + 1
                if host.database:
                    host.lock_free.append(sqlite_write_lock_is_free(host.database))
                if self.path in host.held:
                    host.holding.set()
                    host.released_in_time.append(host.held[self.path].wait(10))
                status, headers, body = host.pages.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = LoopbackHTTPServer(Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve_in_background(self.server)

    def url(self, path: str) -> str:
        return self.base + path

    def publish(self, path: str, document: dict | None = None, *, status: int = 200, body: bytes | None = None,
                **headers) -> str:
        """Serve ``document`` (its client_id its URL unless it says otherwise) at ``path``."""
        url = self.url(path)
        if body is None:
            body = json.dumps({"client_id": url, **(document or {})}).encode()
        self.pages[path] = (status, {name.replace("_", "-"): value for name, value in headers.items()}, body)
        return url

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def public_document(**extra) -> dict:
    return {"client_name": "Reports assistant", "redirect_uris": [NATIVE], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "scope": "read",
            **extra}


@pytest.fixture
def alice(app, client):
    """A person signed in on ``client``."""
    from app.people import accounts
    fresh_context_per_request(app)
    accounts.create("alice", PASSWORD, "admin:test", email="alice@example.com")
    page = client.get("/signin")
    signed_in = client.post("/signin", data={"username": "alice", "password": PASSWORD,
                                             "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert signed_in.status_code == 303


@pytest.fixture
def host():
    served = DocumentHost()
    documents.forget()
    fetch.clear_cache()
    yield served
    served.close()
    documents.forget()
    fetch.clear_cache()


@pytest.fixture
def docs(host, settings):
    """The document host, reachable under the development override (set before the app is built)."""
    settings["FETCH_ALLOW_HTTP_LOOPBACK"] = True
    return host


def authorize_query(client_id: str, **extra) -> dict:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": NATIVE, "scope": "read",
            "state": "s-1", "code_challenge": pkce()[1], "code_challenge_method": "S256", **extra}


def shown_error(client, client_id: str) -> str:
    page = client.get("/authorize", query_string=authorize_query(client_id))
    assert page.status_code == 400, page.headers.get("Location")
    return page.get_data(as_text=True)


# ---- the first appearance ---------------------------------------------------------------------

def test_a_document_that_matches_becomes_a_pending_registration_from_its_host(docs, app, client, alice, runner):
    if app.config["DATABASE_URL"].startswith("sqlite:"):
        docs.database = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    url = docs.publish("/agents/reports.json", public_document(), Cache_Control="max-age=600")
    page = client.get("/authorize", query_string=authorize_query(url))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "waiting for your administrators" in html

    stored = db.session.get(Client, url)
    assert stored.status == PENDING and stored.provenance == "document"
    assert stored.registered_from == "127.0.0.1"  # the publishing host: the pending queue groups by it
    assert stored.client_metadata["redirect_uris"] == [NATIVE] and stored.token_endpoint_auth_method == "none"
    [registered] = events("client.registered", client_id=url)
    assert registered.data["provenance"] == "document" and registered.data["document_host"] == "127.0.0.1"
    assert all(docs.lock_free)  # no transaction was held while the document was fetched

    # the person asks for access; the reviewer sees the document with the registration
    asked = client.post("/authorize/request-access", data={"client_id": url, "reason": "the quarterly reports",
                                                           "csrf_token": csrf_token(html)})
    assert asked.status_code == 200 and "your reason is with the administrators" in asked.get_data(as_text=True)
    shown = json.loads(runner.invoke(args=["registration", "show", url, "--json"]).output)
    assert shown["provenance"] == "document" and shown["access_requests"][0]["reason"] == "the quarterly reports"
    assert shown["client_id_metadata_document"]["document"]["client_name"] == "Reports assistant"
    text = runner.invoke(args=["registration", "show", url]).output
    assert "metadata document: published by 127.0.0.1" in text and '"client_name": "Reports assistant"' in text

    # approved like any client, bound to that URL; the consent page says who vouches
    approve(url, scopes=["read"], audiences=[API])
    consent = client.get("/authorize", query_string=authorize_query(url, resource=API))
    assert consent.status_code == 200
    html = consent.get_data(as_text=True)
    assert "Document published by <strong>127.0.0.1</strong>" in html
    allowed = client.post("/authorize", data={**dict(HIDDEN.findall(html)), "csrf_token": csrf_token(html),
                                              "decision": "allow", "remember": "yes"})
    assert allowed.status_code == 303 and "code=" in allowed.headers["Location"]
    assert docs.hits["/agents/reports.json"] == 1  # kept for its max-age

    # the person's list of agents: disconnecting one named by a URL
    agents = client.get("/my/agents").get_data(as_text=True)
    [action] = re.findall(r'action="([^"]+/disconnect)"', agents)
    assert action == f"/my/agents/{url}/disconnect"
    assert client.post(action, data={"csrf_token": csrf_token(agents)}).status_code == 303
    assert count(Consent) == 0 and events("authorization.withdrawn", client_id=url)


def test_the_token_endpoint_never_registers_a_url_client_it_has_not_seen(docs, client):
    """F1: a stranger's POST /token naming any URL must not make Ostiary fetch it and write: a
    document client is first seen at the authorization endpoint, under its rate limit. (Needs
    ``app.oauth.clients._resolve_document`` to call ``documents.resolve(client_id, first_sight=False)``.)"""
    key = new_key("a")
    url = docs.publish("/machine.json", machine_document(jwks=public_jwks(key)))
    for _ in range(2):
        response = client.post("/token", data={"grant_type": "client_credentials", **assertion_form(url, key)})
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
        assert "first seen at the authorization endpoint" in response.get_json()["error_description"]
    assert not docs.hits and count(Client) == 0 and not events("client.registered")
    assert not events("client_document.fetch_failed")


def test_resolve_without_first_sight_creates_nothing(docs, app):
    url = docs.publish("/machine.json", machine_document(jwks=public_jwks(new_key("a"))))
    with pytest.raises(documents.DocumentError, match="first seen at the authorization endpoint"):
        documents.resolve(url, first_sight=False)
    assert not docs.hits and count(Client) == 0 and not events(client_id=url)
    documents.resolve(url)  # seen once (the authorization endpoint's way): later it is known
    clock.advance(61)
    documents.forget()
    documents.resolve(url, first_sight=False)
    assert docs.hits["/machine.json"] == 2


def test_a_slow_document_does_not_stop_the_event_loop(docs, app, new_agent):
    """At the token endpoint, inline on the loop (app.http.serving), the document is fetched and
    written on threads: while its fetch waits, the loop answers another client's token request."""
    server, key = Server(app, threads=2), new_key("a")
    url = docs.publish("/slow.json", machine_document(jwks=public_jwks(key)))
    documents.resolve(url)  # first seen (as at the authorization endpoint); fetched again below
    clock.advance(61)
    documents.forget()
    release = docs.held["/slow.json"] = threading.Event()
    other = make_client(auth_method="client_secret_basic")

    async def main():
        slow = asyncio.ensure_future(call(server, **form_post(
            "/token", {"grant_type": "client_credentials", **assertion_form(url, key)}, {})))
        await asyncio.get_running_loop().run_in_executor(None, docs.holding.wait, 10)
        fast = await call(server, **new_agent(other, post=form_post).token())
        release.set()
        return await slow, fast

    db.session.remove()
    slow, fast = asyncio.run(main())
    assert docs.released_in_time == [True] and fast.status_code == 200
    assert slow.status_code == 400 and slow.get_json()["error"] == "unauthorized_client"
    assert "pending" in slow.get_json()["error_description"]
    assert db.session.get(Client, url).status == PENDING


def test_pending_documents_are_grouped_by_their_host(docs, app):
    from app.console.queries import pending_groups
    for name in ("a", "b"):
        documents.resolve(docs.publish(f"/agents/{name}.json", public_document(client_name=f"agent {name}")))
    [group] = [g for g in pending_groups() if any(c.provenance == "document" for c in g.clients)]
    assert group.address == "127.0.0.1" and len(group.clients) == 2


def test_the_token_endpoint_refuses_a_url_too_long_saying_so(docs, client):
    url = docs.url("/" + "x" * 600)
    token = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": url})
    assert token.status_code == 401 and token.get_json()["error"] == "invalid_client"
    assert "at most 512 characters" in token.get_json()["error_description"] and not docs.hits


def test_a_host_has_as_many_pending_documents_as_an_address_may_have_registrations(docs, app, client):
    app.config["PENDING_CAP_PER_ADDRESS"] = 1
    documents.resolve(docs.publish("/one.json", public_document()))
    second = docs.publish("/two.json", public_document())
    assert "too many clients published by 127.0.0.1 are waiting for approval" in shown_error(client, second)
    assert count(Client) == 1
    [refused] = events("client_document.refused", client_id=second)  # F11: audited, not only shown
    assert refused.decision == "deny" and "too many clients" in refused.reason
    shown_error(client, second)  # remembered: neither fetched nor audited again
    assert docs.hits["/two.json"] == 1 and len(events("client_document.refused", client_id=second)) == 1


def test_discovery_advertises_documents(docs, client):
    assert client.get("/.well-known/oauth-authorization-server").get_json()[
        "client_id_metadata_document_supported"] is True


# ---- refusals: shown to the person, audited, nothing registered -------------------------------

GENERIC = "must be served over https from a public address, answering 200 with a JSON object and no redirect"


@pytest.mark.parametrize("serve, words, network", [
    (lambda h: h.publish("/doc.json", public_document(client_id="https://elsewhere.example/doc.json")),
     "gives another client_id", False),
    (lambda h: h.publish("/doc.json", public_document(client_name="x" * 70_000)), "larger than", True),
    (lambda h: h.publish("/doc.json", status=302, body=b"", Location="https://elsewhere.example/doc.json"),
     "answered HTTP 302 (redirects are not followed)", True),
    (lambda h: h.publish("/doc.json", body=b"<html>not json</html>", Content_Type="text/html"),
     "did not return JSON", True),
    (lambda h: h.publish("/doc.json", public_document(token_endpoint_auth_method="client_secret_basic",
                                                      grant_types=["authorization_code"])),
     "client_secret_basic is not allowed for a metadata document", False),
    (lambda h: h.publish("/doc.json", public_document(client_secret="s3cret")), "must not carry client_secret",
     False),
    (lambda h: h.publish("/doc.json", public_document(redirect_uris=["https://x.example/*"])), "wildcard", False),
    (lambda h: h.publish("/doc.json", status=404, body=b"gone"), "answered HTTP 404", True),
])
def test_a_document_that_cannot_be_a_client_is_refused_with_the_reason(docs, client, serve, words, network):
    """F10: what the network said about a URL not seen before is for the log and the audit trail,
    not for the anonymous caller; what the document got wrong is told (it is public anyway)."""
    url = serve(docs)
    html = shown_error(client, url)
    assert "metadata document cannot be used" in html
    if network:
        assert GENERIC in html and words not in html
    else:
        assert words in html and GENERIC not in html
    assert count(Client) == 0
    [failed] = events("client_document.fetch_failed", client_id=url)
    assert words in failed.reason and failed.decision == "deny"


@pytest.mark.parametrize("url, words", [
    ("https://127.0.0.1:{port}/doc.json", "loopback"),
    ("http://127.0.0.1:{port}/doc.json", "loopback"),
    ("https://10.1.2.3/doc.json", "private"),
    ("https://[::1]/doc.json", "loopback"),
    ("https://169.254.169.254/latest/doc.json", "metadata"),
])
def test_a_document_at_a_forbidden_address_is_never_fetched(host, client, url, words):
    url = url.format(port=host.server.server_address[1])
    host.publish("/doc.json", public_document())
    html = shown_error(client, url)
    assert words in html and not host.hits and count(Client) == 0


@pytest.mark.parametrize("url, words", [
    ("{base}/", "must have a path"),
    ("{base}", "must have a path"),
    ("{base}/a/../doc.json", ". or .. path segments"),
    ("{base}/a/%2e%2e/doc.json", "must not use percent-encoding"),
    ("{base}/doc.json#frag", "fragment"),
    ("{base}/" + "x" * 600, "longer than 512 characters"),
])
def test_a_url_that_cannot_name_a_document_is_refused(docs, client, url, words):
    url = url.format(base=docs.base)
    page = client.get("/authorize", query_string=authorize_query(url))
    assert page.status_code == 400 and words in page.get_data(as_text=True)
    assert not docs.hits and count(Client) == 0


# ---- what a stranger can make this server do (F1, F5, F7) ----------------------------------------

def test_a_failure_is_remembered_and_answered_without_a_fetch(docs, client, app):
    """F1: a URL nobody registered, failing, is fetched and audited once per
    CLIENT_DOCUMENT_MIN_CACHE, however often it is named."""
    url = docs.publish("/gone.json", status=404, body=b"gone")
    for _ in range(3):
        assert GENERIC in shown_error(client, url)
    assert docs.hits["/gone.json"] == 1 and count(Client) == 0
    [failed] = events("client_document.fetch_failed", client_id=url)
    assert "answered HTTP 404" in failed.reason and failed.data["known"] is False
    clock.advance(int(app.config["CLIENT_DOCUMENT_MIN_CACHE"]) + 1)
    assert GENERIC in shown_error(client, url)
    assert docs.hits["/gone.json"] == 2 and len(events("client_document.fetch_failed", client_id=url)) == 2


def test_first_sight_at_the_authorization_endpoint_is_rate_limited_per_address(docs, app, client):
    """F1: unknown URLs cost a fetch each, so they are limited per caller address; a known one,
    or a client_id that is no URL, is not."""
    app.config["CLIENT_DOCUMENT_RATE_LIMIT"] = "2 per minute"
    known = docs.publish("/known.json", public_document())
    documents.resolve(known)
    fresh = [docs.publish(f"/new-{n}.json", public_document()) for n in range(3)]
    assert [client.get("/authorize", query_string=authorize_query(url)).status_code for url in fresh] == [303, 303,
                                                                                                         429]
    assert "/new-2.json" not in docs.hits and count(Client) == 3
    assert client.get("/authorize", query_string=authorize_query(known)).status_code == 303
    assert client.get("/authorize", query_string=authorize_query(fresh[0])).status_code == 303  # known now
    assert client.get("/authorize", query_string=authorize_query("some-client")).status_code == 400


@pytest.mark.parametrize("path, words", [
    ("/agents/..;/uploads/evil.json", "no ';'"),
    ("/agents/..%5Cevil.json", "must not use percent-encoding"),
    ("/agents/..\\evil.json", "must not contain a backslash"),
    ("/agents/%252e%252e/uploads/evil.json", "must not use percent-encoding"),
    ("/agents/%2fevil.json", "must not use percent-encoding"),
    ("/agents/evil.json?x=1", "must not have a query"),
    ("/agents/evil.json?", "must not have a query"),
    ("/agents//evil.json", "empty path segment"),
    ("/agents/ev@il.json", "no '@'"),
    ("/agents/\x00evil.json", "must not contain control characters"),
    ("/agents/\x1b[2Jevil.json", "must not contain control characters"),
    ("/agents/\x7fevil.json", "must not contain control characters"),
    ("/agents/evil.json\n", "must not contain control characters"),
])
def test_a_client_id_url_outside_the_narrow_grammar_is_refused(docs, app, path, words):
    """F5, F7: a path some server would normalise into another is no client id here."""
    with pytest.raises(documents.DocumentError, match=re.escape(words)):
        documents.check_url(docs.base + path)
    with pytest.raises(documents.DocumentError):
        documents.resolve(docs.base + path)
    assert not docs.hits and count(Client) == 0


@pytest.mark.parametrize("url, covered", [
    ("https://apps.example.com/agents/reports.json", True),
    ("https://apps.example.com/agents/team/reports.json", True),
    ("https://APPS.Example.com:443/agents/reports.json", True),  # the same origin, spelt otherwise
    ("https://apps.example.com/agents/..;/uploads/evil.json", False),
    ("https://apps.example.com/agents/..%5Cevil.json", False),
    ("https://apps.example.com/agents/..\\evil.json", False),
    ("https://apps.example.com/agents/%252e%252e/uploads/evil.json", False),
    ("https://apps.example.com/agents/../uploads/evil.json", False),
    ("https://apps.example.com/agents/evil.json?x=1", False),
    ("https://apps.example.com/agents/\x00evil.json", False),
    ("https://apps.example.com/agents", False),
    ("https://apps.example.com/agents-of-others/x.json", False),
    ("https://apps.example.com:8443/agents/x.json", False),
    ("http://apps.example.com/agents/x.json", False),
    ("https://apps.example.com.evil.example/agents/x.json", False),
])
def test_a_trusted_prefix_covers_by_parsed_parts(app, url, covered):
    from app.models import DocumentPublisher
    from app.trust import document_publishers
    rule = DocumentPublisher(prefix="https://apps.example.com/agents/")
    assert document_publishers.covers(rule, url) is covered


def test_a_trusted_prefix_is_normalised_and_kept_to_the_grammar(app):
    from app.trust import document_publishers
    assert document_publishers.check_prefix("https://Apps.Example.COM:443/agents/") == "https://apps.example.com/agents/"
    assert document_publishers.check_prefix("https://apps.example.com:8443/a/") == "https://apps.example.com:8443/a/"
    for prefix in ("https://apps.example.com/a;b/", "https://apps.example.com/%2e%2e/", "https://apps.example.com//a/",
                   "https://apps.example.com/a\\b/", "https://apps.example.com/a/?x=1"):
        with pytest.raises(document_publishers.DocumentPublisherError):
            document_publishers.check_prefix(prefix)


def test_the_cli_escapes_a_document_url_it_prints(app, runner):
    """F7: a row written before the grammar (or by hand) cannot drive the reader's terminal."""
    url = "https://apps.example.com/agents/\x1b[2J.json"
    now = clock.now()
    db.session.add(Client(client_id=url, status=PENDING, created_at=now, updated_at=now, client_metadata={},
                          token_endpoint_auth_method="none", registration_token_hash="0" * 64))
    db.session.add(ClientDocument(client_id=url, document={}, fetched_at=now, fresh_until=now, checked_at=now))
    db.session.commit()
    listed = runner.invoke(args=["document", "list"]).output
    assert "\x1b" not in listed and "\\u001b[2J.json" in listed


def test_a_known_client_recovering_from_an_error_is_audited(docs, app):
    """F11: stopped, then working again with the same document: both are in the trail."""
    url = docs.publish("/doc.json", public_document())
    documents.resolve(url)
    del docs.pages["/doc.json"]
    clock.advance(61)
    with pytest.raises(documents.DocumentError, match="answered HTTP 404"):  # known: the detail is its own
        documents.resolve(url)
    docs.publish("/doc.json", public_document())
    clock.advance(61)
    documents.resolve(url)
    [recovered] = events("client_document.recovered", client_id=url)
    assert recovered.actor == "system" and "404" in recovered.data["error"] and recovered.data["changed"] == []
    assert db.session.get(ClientDocument, url).error is None


# ---- caching ----------------------------------------------------------------------------------

def resolve_count(docs, path: str) -> int:
    documents.resolve(docs.url(path))
    return docs.hits.get(path, 0)


@pytest.mark.parametrize("cache_control, kept", [
    ("max-age=600", 600),        # honoured
    ("max-age=999999", 3600),    # at most CLIENT_DOCUMENT_MAX_CACHE
    ("max-age=5", 60),           # at least CLIENT_DOCUMENT_MIN_CACHE
    ("no-store", 60),            # no-store: the least
    (None, 60),                  # nothing said: the least
])
def test_a_document_is_kept_as_its_caching_headers_say_within_the_bounds(docs, settings, app, cache_control, kept):
    app.config.update(CLIENT_DOCUMENT_MIN_CACHE=60, CLIENT_DOCUMENT_MAX_CACHE=3600)
    headers = {"Cache_Control": cache_control} if cache_control else {}
    url = docs.publish("/cached.json", public_document(), **headers)
    assert resolve_count(docs, "/cached.json") == 1
    documents.forget()  # another process: it reads the stored cache time
    clock.advance(kept - 2)
    assert resolve_count(docs, "/cached.json") == 1
    clock.advance(3)
    assert resolve_count(docs, "/cached.json") == 2
    stored = db.session.get(ClientDocument, url)
    db.session.refresh(stored)
    assert (stored.fresh_until - stored.fetched_at).total_seconds() == pytest.approx(kept, abs=1)


def test_a_document_fetched_again_picks_up_a_harmless_change_and_stays_approved(docs, client):
    url = docs.publish("/doc.json", public_document(), Cache_Control="max-age=60")
    documents.resolve(url)
    approve(url, scopes=["read"], audiences=[API])
    docs.publish("/doc.json", public_document(client_name="Reports assistant 2"), Cache_Control="max-age=60")
    clock.advance(61)
    documents.resolve(url)
    stored = db.session.get(Client, url)
    db.session.refresh(stored)
    assert stored.status == ACTIVE and stored.client_name == "Reports assistant 2" and stored.version == 2
    [updated] = events("client.updated", client_id=url)
    assert updated.data["changed"] == ["client_name"] and updated.data["back_to_pending"] is None


# ---- a document that changes for the worse ----------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"scope": "read write"}, "asks for write"),
    ({"redirect_uris": ["http://127.0.0.1/other"]}, "redirect_uris changed"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks": "KEYS"}, "token_endpoint_auth_method changed"),
])
def test_a_document_that_asks_for_more_or_changes_how_it_is_recognised_goes_back_to_pending(docs, client, change,
                                                                                            words):
    url = docs.publish("/doc.json", public_document())
    documents.resolve(url)
    approve(url, scopes=["read"], audiences=[API])
    if change.get("jwks") == "KEYS":
        change = {**change, "jwks": public_jwks(new_key("a"))}
    docs.publish("/doc.json", public_document(**change))
    clock.advance(61)
    page = client.get("/authorize", query_string=authorize_query(url))
    assert page.status_code in (302, 303, 400)  # to sign in; or its redirect URI is no longer registered
    stored = db.session.get(Client, url)
    db.session.refresh(stored)
    assert stored.status == PENDING and words in stored.status_reason
    [updated] = events("client.updated", client_id=url)
    assert words in updated.data["back_to_pending"]


@pytest.mark.parametrize("stop", ["suspended", "expired"])
@pytest.mark.parametrize("change, words", [
    ({"scope": "read write"}, "asks for write"),
    ({"redirect_uris": ["http://127.0.0.1/other"]}, "redirect_uris changed"),
])
def test_a_stopped_client_whose_document_changes_goes_back_to_a_person(docs, app, stop, change, words):
    """F4: suspended or expired, its document's change is reviewed before anything makes it live
    again; a person stopped it, so neither a publisher's rule nor the purge of stale pending
    registrations decides it."""
    from app.registration import lifecycle
    from app.trust import document_publishers
    document_publishers.add(docs.url("/"), owner="team-agents", scopes=["read"], audiences=[API], approval_days=30,
                            assurance_level=1, proofing_method="owner_attestation", actor="admin:test")
    url = docs.publish("/doc.json", public_document())
    documents.resolve(url)
    assert db.session.get(Client, url).status == ACTIVE  # by the rule
    if stop == "suspended":
        lifecycle.suspend(url, reason="its key leaked", actor="admin:test")
        why = "while it was suspended (its key leaked)"
    else:
        clock.advance(31 * 86400)
        lifecycle.expire_due()
        why = "while it was expired (approval expired on"
    stopped_at = db.session.get(Client, url).tokens_not_before
    docs.publish("/doc.json", public_document(**change))
    clock.advance(61)
    documents.forget()
    documents.resolve(url)
    db.session.expire_all()
    stored = db.session.get(Client, url)
    assert stored.status == PENDING and why in stored.status_reason and words in stored.status_reason
    assert stored.tokens_not_before == stopped_at and stored.pending_expires_at is None
    assert len(events("client.approved", client_id=url)) == 1  # the rule did not approve it again
    [updated] = events("client.updated", client_id=url)
    assert words in updated.data["back_to_pending"]
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.reactivate(url, actor="admin:test")
    clock.advance(int(app.config["PENDING_TTL"]) + 1)
    assert lifecycle.purge_stale_pending() == 0 and db.session.get(Client, url) is not None


def test_a_document_that_disappears_stops_the_client_with_a_clear_error(docs, client, alice):
    url = docs.publish("/doc.json", public_document())
    documents.resolve(url)
    approve(url, scopes=["read"], audiences=[API])
    del docs.pages["/doc.json"]
    clock.advance(61)
    html = shown_error(client, url)
    assert "could not be fetched" in html and "answered HTTP 404" in html
    token = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": url})
    assert token.status_code == 401 and token.get_json()["error"] == "invalid_client"
    assert "answered HTTP 404" in token.get_json()["error_description"]
    failed = events("client_document.fetch_failed", client_id=url)
    assert failed and failed[0].data["known"] is True
    assert "404" in db.session.get(ClientDocument, url).error
    # back again: after the least cache time it is fetched and used again
    docs.publish("/doc.json", public_document())
    clock.advance(61)
    consent = client.get("/authorize", query_string=authorize_query(url, resource=API))
    assert consent.status_code == 200 and "act for you" in consent.get_data(as_text=True)


def test_a_document_that_turns_invalid_stops_the_client(docs, client):
    url = docs.publish("/doc.json", public_document())
    documents.resolve(url)
    docs.publish("/doc.json", public_document(client_id=url + "?other"))
    clock.advance(61)
    assert "gives another client_id" in shown_error(client, url)


# ---- private_key_jwt with the document's keys -------------------------------------------------

def assertion_form(url: str, key, *, aud: str = ISSUER) -> dict:
    now = int(clock.timestamp())
    claims = {"iss": url, "sub": url, "aud": aud, "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}
    signed = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}


def machine_document(**keys) -> dict:
    return {"client_name": "nightly job", "grant_types": ["client_credentials"], "scope": "read",
            "token_endpoint_auth_method": "private_key_jwt", **keys}


@pytest.mark.parametrize("by", ["jwks", "jwks_uri"])
def test_private_key_jwt_with_the_documents_keys_and_their_rotation(docs, client, app, by):
    old, new = new_key("old"), new_key("new")

    def publish(key):
        if by == "jwks":
            return docs.publish("/job.json", machine_document(jwks=public_jwks(key)), Cache_Control="max-age=60")
        docs.publish("/jwks.json", body=json.dumps(public_jwks(key)).encode())
        return docs.publish("/job.json", machine_document(jwks_uri=docs.url("/jwks.json")), Cache_Control="max-age=60")

    url = publish(old)
    documents.resolve(url)
    approve(url, scopes=["read"], audiences=[API])

    def token(key):
        return client.post("/token", data={"grant_type": "client_credentials", "resource": API,
                                           **assertion_form(url, key)})

    assert token(old).status_code == 200, token(old).get_json()
    publish(new)
    clock.advance(max(61, int(app.config["FETCH_CACHE_SECONDS"]) + 1))
    rotated = token(new)
    assert rotated.status_code == 200, rotated.get_json()
    assert token(old).status_code == 401
    assert db.session.get(Client, url).status == ACTIVE  # a key rotation is no new review


# ---- trusted publishers of documents ----------------------------------------------------------

def test_a_trusted_document_publisher_approves_within_its_ceiling(docs, runner):
    prefix = docs.url("/agents/")
    added = runner.invoke(args=["document-publisher", "add", prefix, "--owner", "team-agents", "--scope", "read",
                                "--audience", API, "--days", "30",
                                "--proofing-method", "owner_attestation"])
    assert added.exit_code == 0, added.output
    listed = json.loads(runner.invoke(args=["document-publisher", "list", "--json"]).output)
    assert [rule["prefix"] for rule in listed] == [prefix]

    within = docs.publish("/agents/reports.json", public_document())
    documents.resolve(within)
    approved = db.session.get(Client, within)
    assert approved.status == ACTIVE and approved.approval.approved_by == f"policy:document-publisher:{listed[0]['id']}"
    assert approved.approval.scopes == ["read"] and approved.approval.audiences == [API]
    assert (approved.approval.expires_at - clock.now()).days in (29, 30)
    [event] = events("client.approved", client_id=within)
    assert event.actor.startswith("policy:document-publisher:")

    beyond = docs.publish("/agents/more.json", public_document(scope="read write"))
    elsewhere = docs.publish("/other/reports.json", public_document())
    lookalike = docs.publish("/agents-of-others/reports.json", public_document())
    for url in (beyond, elsewhere, lookalike):
        documents.resolve(url)
        assert db.session.get(Client, url).status == PENDING, url
    [left] = events("document_publisher.not_applied", client_id=beyond)  # F11: why it waits, audited
    assert "asks for write, beyond the rule" in left.reason and left.actor.startswith("policy:document-publisher:")
    assert not events("document_publisher.not_applied", client_id=elsewhere)

    removed = runner.invoke(args=["document-publisher", "remove", prefix])
    assert removed.exit_code == 0 and events("document_publisher.removed")


@pytest.mark.parametrize("args, words", [
    (["https://apps.example.com/agents", "--scope", "read", "--audience", API], "ending in '/'"),
    (["https://apps.example.com/agents/?x=1", "--scope", "read", "--audience", API], "without a query"),
    (["http://apps.example.com/agents/", "--scope", "read", "--audience", API], "https"),
    (["https://apps.example.com/agents/", "--scope", "bad scope\"", "--audience", API], "not valid scope names"),
    (["https://apps.example.com/agents/", "--scope", "read", "--audience", "not-a-uri"], "absolute URI"),
    (["https://apps.example.com/agents/", "--scope", "read", "--audience", API, "--days", "5000"], "1 to"),
    (["https://apps.example.com/agents/", "--scope", "read", "--audience", API, "--proofing-method",
      "software_statement"], "software statement"),
])
def test_a_document_publisher_rule_is_refused_with_the_reason(runner, args, words):
    if "--proofing-method" not in args:
        args = [*args, "--proofing-method", "owner_attestation"]
    result = runner.invoke(args=["document-publisher", "add", *args, "--owner", "team-agents"])
    assert result.exit_code == 1 and words in result.output
    assert not events("document_publisher.added")


def test_a_document_publisher_rule_needs_the_proofing_method_chosen(runner):
    """No silent default: a rule records how its publisher was proofed, as an approval does."""
    result = runner.invoke(args=["document-publisher", "add", "https://apps.example.com/agents/", "--owner",
                                 "team-agents", "--scope", "read", "--audience", API])
    assert result.exit_code == 2 and "--proofing-method" in result.output
    assert not events("document_publisher.added")


# ---- the switch -------------------------------------------------------------------------------

def test_with_documents_switched_off_a_url_client_id_is_unknown(docs, settings, client, app):
    known = docs.publish("/known.json", public_document())
    documents.resolve(known)
    approve(known, scopes=["read"], audiences=[API])  # registered while documents were on
    app.config["CLIENT_ID_DOCUMENTS"] = False
    url = docs.publish("/doc.json", public_document())
    for client_id in (url, known):
        assert "not registered here" in shown_error(client, client_id)
        token = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                            "client_id": client_id})
        assert token.status_code == 401 and token.get_json()["error"] == "invalid_client"
    assert "client_id_metadata_document_supported" not in client.get(
        "/.well-known/oauth-authorization-server").get_json()
    assert "/doc.json" not in docs.hits and docs.hits["/known.json"] == 1 and count(Client) == 1


# ---- the CLI and the console ------------------------------------------------------------------

def test_the_cli_lists_shows_and_refreshes_documents(docs, runner):
    url = docs.publish("/doc.json", public_document(), Cache_Control="max-age=3600")
    documents.resolve(url)
    [listed] = json.loads(runner.invoke(args=["document", "list", "--json"]).output)
    assert listed["url"] == url and listed["status"] == PENDING and listed["error"] is None
    shown = json.loads(runner.invoke(args=["document", "show", url, "--json"]).output)
    assert shown["document"]["client_name"] == "Reports assistant"
    docs.publish("/doc.json", public_document(client_name="Renamed"), Cache_Control="max-age=3600")
    refreshed = runner.invoke(args=["document", "refresh", url, "--json"])
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.output)["document"]["client_name"] == "Renamed"
    assert docs.hits["/doc.json"] == 2 and events("client_document.refreshed", client_id=url)
    del docs.pages["/doc.json"]
    failed = runner.invoke(args=["document", "refresh", url])
    assert failed.exit_code == 1 and "answered HTTP 404" in failed.output
    assert runner.invoke(args=["document", "show", docs.url("/none.json")]).exit_code == 1


def test_an_administrator_adds_a_machine_agents_document_before_its_first_token(docs, runner, client):
    """A machine agent never visits /authorize: ``ostiary document add`` is its first sight,
    by a person, audited as theirs; once approved it gets a token at once."""
    key = new_key("a")
    url = docs.publish("/machine.json", machine_document(jwks=public_jwks(key)), Cache_Control="max-age=3600")
    added = runner.invoke(args=["document", "add", url, "--json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["status"] == PENDING and docs.hits["/machine.json"] == 1
    [registered] = events("client.registered", client_id=url)
    assert registered.actor == actor()
    again = runner.invoke(args=["document", "add", url])
    assert again.exit_code == 1 and "ostiary document refresh" in again.output
    approve(url, scopes=["read"], audiences=[API])
    token = client.post("/token", data={"grant_type": "client_credentials", "resource": API,
                                        **assertion_form(url, key)})
    assert token.status_code == 200, token.get_json()
    assert docs.hits["/machine.json"] == 1  # the fetched document is still fresh


@pytest.mark.parametrize("path, told, fetched", [
    ("/gone.json", "answered HTTP 404", True),
    ("/a/../b.json", "must not have . or .. path segments", False),  # refused before any fetch
])
def test_adding_a_document_that_cannot_be_used_registers_nothing(docs, runner, path, told, fetched):
    failed = runner.invoke(args=["document", "add", docs.url(path)])
    assert failed.exit_code == 1 and told in failed.output
    assert count(Client) == 0 and not events("client.registered")
    assert [e.actor for e in events("client_document.fetch_failed")] == ([actor()] if fetched else [])


def test_no_document_is_added_while_documents_are_switched_off(docs, runner, app):
    app.config["CLIENT_ID_DOCUMENTS"] = False
    url = docs.publish("/machine.json", machine_document(jwks=public_jwks(new_key("a"))))
    failed = runner.invoke(args=["document", "add", url])
    assert failed.exit_code == 1 and "switched off" in failed.output
    assert not docs.hits and count(Client) == 0


def test_the_console_shows_the_document_and_refreshes_it(docs, app, client):
    url = docs.publish("/doc.json", public_document(), Cache_Control="max-age=3600")
    documents.resolve(url)
    console = Console(client)
    console.create_admin()
    console.login()
    page = client.get(f"/console/clients/{url}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Client ID metadata document" in html and "Reports assistant" in html
    refused = client.post(f"/console/clients/{url}/document/refresh", data={})
    assert refused.status_code == 400 and docs.hits["/doc.json"] == 1  # no CSRF token: nothing fetched
    docs.publish("/doc.json", public_document(client_name="Renamed"), Cache_Control="max-age=3600")
    done = console.post(f"/console/clients/{url}/document/refresh", page=f"/console/clients/{url}")
    assert done.status_code == 303
    assert docs.hits["/doc.json"] == 2 and db.session.get(Client, url).client_name == "Renamed"
    [event] = events("client_document.refreshed", client_id=url)
    assert event.actor == "admin:alice"
    html = client.get(f"/console/clients/{url}").get_data(as_text=True)
    assert "Renamed" in html

    # approved from the page's own form, whose action keeps the URL's slashes
    [action] = re.findall(r'action="([^"]+/approve)"', html)
    assert action == f"/console/clients/{url}/approve"
    today = clock.now().date()
    approved = client.post(action, data={
        "csrf_token": csrf_token(html), "assurance_level": "1", "version": "2", "proofing_method": "in_person",
        "evidence": "TICKET-42", "owner": "team-agents", "purpose": "reports", "scopes": ["read"],
        "audiences": API, "max_token_ttl": "300", "expires_at": (today + timedelta(days=90)).isoformat(),
        "review_at": (today + timedelta(days=30)).isoformat()})
    assert approved.status_code == 303, approved.get_data(as_text=True)
    assert approved.headers["Location"].endswith(f"/console/clients/{url}")
    db.session.expire_all()
    assert db.session.get(Client, url).status == ACTIVE
    assert events("client.approved", only="actor") == ["admin:alice"]
    trail = client.get("/console/audit", query_string={"client_id": url}).get_data(as_text=True)
    assert "client_document.refreshed" in trail and "client.approved" in trail


def test_the_migration_widens_client_ids_on_postgresql(app, backend):
    from sqlalchemy import inspect
    columns = {c["name"]: c["type"] for c in inspect(db.engine).get_columns("client")}
    length = getattr(columns["client_id"], "length", None)
    assert length == (512 if backend == "postgresql" else 64)
    url = "https://apps.example.com/" + "a" * 480
    db.session.add(Client(client_id=url, status=PENDING, created_at=clock.now(), updated_at=clock.now(),
                          client_metadata={}, token_endpoint_auth_method="none", registration_token_hash="0" * 64))
    db.session.commit()
    assert db.session.execute(select(Client.client_id)).scalar_one() == url




def test_the_console_trust_page_lists_document_publishers_and_removes_one(app, client, runner):
    added = runner.invoke(args=["document-publisher", "add", "https://apps.example.com/agents/", "--owner",
                                "team-agents", "--scope", "read", "--audience", API,
                                "--proofing-method", "owner_attestation"])
    assert added.exit_code == 0, added.output
    console = Console(client)
    console.create_admin()
    console.login()
    html = client.get("/console/trust").get_data(as_text=True)
    assert "https://apps.example.com/agents/" in html and "team-agents" in html
    [rule] = json.loads(runner.invoke(args=["document-publisher", "list", "--json"]).output)
    assert client.post(f"/console/trust/document-publishers/{rule['id']}/remove").status_code == 400
    assert events("document_publisher.removed") == []  # no CSRF token: nothing removed
    assert console.post(f"/console/trust/document-publishers/{rule['id']}/remove",
                        page="/console/trust").status_code == 303
    [removed] = events("document_publisher.removed")
    assert removed.actor == "admin:alice" and "No trusted publishers of documents" in client.get(
        "/console/trust").get_data(as_text=True)


def test_the_console_adds_a_document_publisher_with_the_method_chosen(app, client):
    console = Console(client)
    console.create_admin()
    console.login()
    html = client.get("/console/trust").get_data(as_text=True)
    select_ = re.search(r'<select id="dp-proofing_method".*?</select>', html, re.DOTALL).group(0)
    assert '<option value="">— choose how you proofed the publisher —' in select_ and "selected" not in select_
    form = {"dp-url_prefix": "https://apps.example.com/agents/", "dp-owner": "team-agents", "dp-scopes": "read",
            "dp-audiences": API, "dp-approval_days": "30", "dp-assurance_level": "1",
            "dp-csrf_token": csrf_token(html)}  # the form's fields, its token too, carry its prefix
    refused = console.post("/console/trust/document-publishers", form, page="/console/trust")
    assert refused.status_code == 400 and "Choose how you proofed the publisher." in refused.get_data(as_text=True)
    wrong = console.post("/console/trust/document-publishers",
                         {**form, "dp-url_prefix": "https://apps.example.com/agents", "dp-proofing_method": "owner_attestation"},
                         page="/console/trust")
    assert wrong.status_code == 400 and "ending in &#39;/&#39;" in wrong.get_data(as_text=True)
    assert 'value="team-agents"' in wrong.get_data(as_text=True)  # what was typed is kept
    assert not events("document_publisher.added")
    added = console.post("/console/trust/document-publishers", {**form, "dp-proofing_method": "owner_attestation"},
                         page="/console/trust")
    assert added.status_code == 303
    [event] = events("document_publisher.added")
    assert event.actor == "admin:alice" and event.data["prefix"] == "https://apps.example.com/agents/"
    assert event.data["proofing_method"] == "owner_attestation" and event.data["approval_days"] == 30


def test_0007_goes_down_and_up_again(tmp_path, new_pg_database):
    """Revision 0007 downgrades to 0006 (refused while a URL client exists on PostgreSQL, whose
    id the narrower column cannot hold) and upgrades again, on both backends."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect, text

    from app import create_app

    from .conftest import _overrides
    for url in (f"sqlite:///{tmp_path}/round-trip.db", new_pg_database()):
        made = create_app(_overrides(tmp_path, url), check=False)
        directory = made.extensions["migrate"].directory
        with made.app_context():
            upgrade(directory=directory, revision="0007")
            assert {"client_document", "document_publisher"} <= set(inspect(db.engine).get_table_names())
            if db.engine.dialect.name == "postgresql":
                with db.engine.begin() as connection:
                    connection.execute(text(
                        "INSERT INTO client (client_id, status, created_at, updated_at, client_metadata, "
                        "token_endpoint_auth_method, registration_token_hash, signed_fields, review_flags, version) "
                        "VALUES (:id, 'pending', now(), now(), '{}', 'none', :h, '[]', '[]', 1)"),
                        {"id": "https://apps.example.com/" + "a" * 100, "h": "0" * 64})
                with pytest.raises(SystemExit):  # Flask-Migrate's way of failing: nothing was changed
                    downgrade(directory=directory, revision="0006")
                assert "client_document" in inspect(db.engine).get_table_names()
                with db.engine.begin() as connection:
                    connection.execute(text("DELETE FROM client"))
            downgrade(directory=directory, revision="0006")
            assert "client_document" not in inspect(db.engine).get_table_names()
            upgrade(directory=directory, revision="0007")
            assert "document_publisher" in inspect(db.engine).get_table_names()
            db.engine.dispose()
