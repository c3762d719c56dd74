"""The console's sign-in, security headers, CSRF, keys and audit pages (test client)."""
import json

import pytest
from sqlalchemy import select

from app.audit import sequencer
from app.extensions import db
from app.models import SigningKey

from .console_helpers import Console, csrf_token
from .factories import events


@pytest.fixture
def console(client):
    return Console(client).create_admin()


@pytest.fixture
def logged_in(console):
    assert console.login().status_code == 303
    return console


@pytest.mark.parametrize("path", ["/console/", "/console/pending", "/console/inventory", "/console/keys",
                                  "/console/trust", "/console/audit", "/console/audit/export.jsonl",
                                  "/console/clients/nope"])
def test_every_page_sends_a_visitor_who_is_not_logged_in_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")


def test_console_root_redirects_to_login(client):
    response = client.get("/console", follow_redirects=True)
    assert response.request.path == "/console/login"
    assert b'<label for="username">Username</label>' in response.data
    assert b'<label for="password">Password</label>' in response.data


def test_login_then_logout(console):
    response = console.login()
    assert response.headers["Location"] == "/console/pending"
    assert console.client.get("/console/pending").status_code == 200
    assert events("admin.login")[0].actor == "admin:alice"
    out = console.post("/console/logout", page="/console/pending")
    assert out.headers["Location"] == "/console/login"
    assert console.client.get("/console/pending").status_code == 302
    assert events("admin.logout")[0].actor == "admin:alice"


@pytest.mark.parametrize("username,password", [("alice", "wrong password here"),
                                               ("mallory", "correct horse battery staple")])
def test_login_failure_is_refused_and_audited(console, username, password):
    response = console.login(password=password, username=username)
    assert response.status_code == 401
    assert b"Wrong username or password." in response.data
    failed = events("admin.login_failed")
    assert [(e.actor, e.decision) for e in failed] == [(f"admin:{username}", "deny")]
    assert console.client.get("/console/pending").status_code == 302


def test_login_redirects_only_inside_the_console(console):
    page = console.client.get("/console/login")
    response = console.client.post("/console/login?next=https://evil.example/", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "username": "alice",
        "password": "correct horse battery staple"})
    assert response.headers["Location"] == "/console/pending"


@pytest.mark.parametrize("settings", [{"LOGIN_RATE_LIMIT": "2 per minute"}])
def test_login_is_rate_limited(console, settings):
    for _ in range(2):
        assert console.login(password="wrong password again").status_code == 401
    response = console.login()
    assert response.status_code == 429
    assert b"Too Many Requests" in response.data


def test_session_cookie_is_httponly_samesite_and_expires(console, app):
    response = console.login()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert "Secure" not in cookie  # the test issuer is http on loopback
    assert app.permanent_session_lifetime.total_seconds() == app.config["CONSOLE_SESSION_MINUTES"] * 60


@pytest.mark.parametrize("settings", [{"ISSUER": "https://auth.example.com"}])
def test_session_cookie_is_secure_when_the_issuer_is_https(console, settings):
    assert "Secure" in console.login().headers["Set-Cookie"]


@pytest.mark.parametrize("path", ["/console/login", "/console/pending", "/console/keys", "/console/nope"])
def test_security_headers(logged_in, path):
    response = logged_in.client.get(path)
    csp = response.headers.get("Content-Security-Policy", "")
    if path == "/console/nope":  # outside the blueprint: the app's 404, still no JSON
        assert response.status_code == 404
        return
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert b"<script" not in response.data and b" style=" not in response.data


@pytest.mark.parametrize("path,data", [("/console/keys/rotate", {}), ("/console/logout", {})])
def test_post_without_csrf_token_is_refused_and_changes_nothing(logged_in, path, data):
    before = db.session.execute(select(SigningKey.kid, SigningKey.state)).all()
    response = logged_in.client.post(path, data=data)
    assert response.status_code == 400
    assert b"CSRF" in response.data
    assert db.session.execute(select(SigningKey.kid, SigningKey.state)).all() == before
    assert logged_in.client.get("/console/pending").status_code == 200  # still logged in


def test_keys_page_lists_and_rotates(logged_in):
    page = logged_in.client.get("/console/keys").get_data(as_text=True)
    active = db.session.execute(select(SigningKey).where(SigningKey.state == "active")).scalar_one()
    assert active.kid in page and "Rotate signing keys now" in page
    response = logged_in.post("/console/keys/rotate")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(SigningKey, active.kid).state == "retiring"
    assert events("key.rotated")[0].actor == "admin:alice"
    assert "now signs" in logged_in.client.get("/console/keys").get_data(as_text=True)


def test_audit_search_and_jsonl_export(logged_in):
    logged_in.post("/console/keys/rotate")
    page = logged_in.client.get("/console/audit?actor=admin:alice&event_type=key.rotated").get_data(
        as_text=True)
    assert "key.rotated" in page and "admin.login" not in page
    assert "No events match." in logged_in.client.get("/console/audit?actor=nobody").get_data(as_text=True)
    sequencer.seal_all()
    export = logged_in.client.get("/console/audit/export.jsonl?actor=admin:alice")
    assert export.mimetype == "application/jsonl"
    lines = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    assert [line["event_type"] for line in lines] == ["admin.login", "key.rotated"]
    assert all(line["actor"] == "admin:alice" and len(line["hash"]) == 64 for line in lines)


def test_audit_verify_shows_waiting_events_and_the_latest_checkpoint(logged_in):
    logged_in.post("/console/keys/rotate")
    page = logged_in.client.get("/console/audit/verify").get_data(as_text=True)
    assert "The audit trail is intact" in page and "wait for the sequencer" in page
    sequencer.seal_all(checkpoint=True)
    page = logged_in.client.get("/console/audit/verify").get_data(as_text=True)
    assert "wait for the sequencer" not in page
    assert sequencer.latest()["checkpoint"] in page


def test_audit_time_filter(logged_in):
    assert "admin.login" in logged_in.client.get("/console/audit?since=2000-01-01").get_data(as_text=True)
    page = logged_in.client.get("/console/audit?until=2000-01-01").get_data(as_text=True)
    assert "No events match." in page


def test_audit_verify(logged_in):
    page = logged_in.client.get("/console/audit/verify").get_data(as_text=True)
    assert "The audit trail is intact" in page


def public_jwks():
    from joserfc.jwk import ECKey
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True)
    return json.dumps({"keys": [key.as_dict(private=False)]})


def test_a_publisher_whose_statements_are_accepted_once(logged_in):
    from app.models import Publisher
    logged_in.post("/console/trust/publishers", page="/console/trust", data={
        "issuer": "https://once.example", "jwks": public_jwks(), "assurance_level": "1", "require_jti": "y"})
    assert db.session.execute(select(Publisher)).scalar_one().require_jti is True
    assert "each once (jti)" in logged_in.client.get("/console/trust").get_data(as_text=True)
    assert events("publisher.added")[0].data["require_jti"] is True


def test_publishers_and_workload_issuers_add_and_remove(logged_in):
    from app.models import Publisher, WorkloadIssuer
    logged_in.post("/console/trust/publishers", page="/console/trust", data={
        "issuer": "https://publisher.example", "jwks": public_jwks(), "assurance_level": "2"})
    logged_in.post("/console/trust/workload-issuers", page="/console/trust", data={
        "wi-issuer": "https://k8s.example", "wi-jwks": public_jwks(), "wi-audience": "ostiary",
        "wi-subject_pattern": "system:serviceaccount:agents:*"})
    page = logged_in.client.get("/console/trust").get_data(as_text=True)
    assert "https://publisher.example" in page and "system:serviceaccount:agents:*" in page
    assert '<label for="wi-issuer">' in page and '<label for="issuer">' in page
    publisher = db.session.execute(select(Publisher)).scalar_one()
    issuer = db.session.execute(select(WorkloadIssuer)).scalar_one()
    assert (publisher.assurance_level, publisher.algorithms, publisher.require_jti) == (2, ["ES256"], False)
    logged_in.post(f"/console/trust/publishers/{publisher.id}/remove", page="/console/trust")
    logged_in.post(f"/console/trust/workload-issuers/{issuer.id}/remove", page="/console/trust")
    assert db.session.execute(select(Publisher)).first() is None
    assert db.session.execute(select(WorkloadIssuer)).first() is None
    assert [e.actor for e in events("publisher.added") + events("publisher.removed")
            + events("workload_issuer.added") + events("workload_issuer.removed")] == ["admin:alice"] * 4


@pytest.mark.parametrize("data,message", [
    ({"issuer": "https://p.example", "jwks": "{not json", "assurance_level": "1"}, "not valid JSON"),
    ({"issuer": "https://p.example", "assurance_level": "1"}, "exactly one of"),
    ({"issuer": "", "assurance_level": "1"}, "This field is required."),
])
def test_publisher_refusals_explain(logged_in, data, message):
    response = logged_in.post("/console/trust/publishers", page="/console/trust", data=data)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
