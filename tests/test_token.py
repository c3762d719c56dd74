"""client_credentials (RFC 6749 §4.4) minting RFC 9068 JWT access tokens, within the approval."""
import base64
import contextlib

import jwt as pyjwt
import psycopg
import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.models import Client, IssuedToken
from app.oauth.server import AUTHENTICATION_FAILED
from app.support import clock

from .factories import count, events, make_client
from .token_actions import ISSUER


def verify(client, token, audience="https://api.example.com"):
    """Verify as a relying service would: PyJWT, the served JWKS, the RFC 9068 typ."""
    jwks = client.get("/jwks.json").get_json()
    header = pyjwt.get_unverified_header(token)
    key = next(pyjwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    assert header["typ"] == "at+jwt"
    return pyjwt.decode(token, key.key, algorithms=["ES256"], issuer=ISSUER, audience=audience,
                        options={"verify_exp": False})


def test_private_key_jwt_gets_an_rfc9068_token(client, new_agent):
    made = make_client()
    response = new_agent(made).token()
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read" and "refresh_token" not in body
    claims = verify(client, body["access_token"])
    assert claims["sub"] == claims["client_id"] == made.client_id
    assert claims["scope"] == "read" and claims["owner"] == "team-agents"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 300
    row = db.session.get(IssuedToken, claims["jti"])
    assert row.client_id == made.client_id and row.grant_type == "client_credentials"
    [issued] = events("token.issued")
    assert (issued.jti, issued.client_id, issued.decision) == (claims["jti"], made.client_id, "allow")
    assert issued.data["scope"] == "read" and issued.data["auth_method"] == "private_key_jwt"


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_secret_methods(client, auth_method):
    made = make_client(auth_method=auth_method)
    if auth_method == "client_secret_basic":
        basic = base64.b64encode(f"{made.client_id}:{made.client_secret}".encode()).decode()
        response = client.post("/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})
    else:
        response = client.post("/token", data={"grant_type": "client_credentials", "client_id": made.client_id,
                                               "client_secret": made.client_secret})
    assert response.status_code == 200, response.get_json()


def test_wrong_secret_is_401_with_www_authenticate(client):
    made = make_client(auth_method="client_secret_basic")
    basic = base64.b64encode(f"{made.client_id}:not-the-secret".encode()).decode()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert response.get_json()["error_description"] == AUTHENTICATION_FAILED
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    [refused] = events("token.refused")
    assert refused.actor == "anonymous" and refused.decision == "deny"
    assert refused.client_id == made.client_id and "wrong client secret" in refused.reason


@pytest.mark.parametrize("header", ["Basic ", "Basic //79"])  # no credentials; not UTF-8 inside
def test_a_malformed_basic_header_is_invalid_client(client, header):
    """Authlib's Basic parser raises ValueError on these; the answer is RFC 6749 §2.3.1's error."""
    make_client(auth_method="client_secret_basic")
    response = client.post("/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert "not valid HTTP Basic" in response.get_json()["error_description"]


def test_the_registered_method_only(client):
    """A private_key_jwt client cannot fall back to a secret (it has none), and vice versa."""
    made = make_client(auth_method="client_secret_post")
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": made.client_id,
                                           "client_secret": made.client_secret, "client_assertion": "x.y.z",
                                           "client_assertion_type": "nonsense"})
    assert response.status_code == 200  # the secret, the method it registered, works
    keyed = make_client()
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": keyed.client_id,
                                           "client_secret": "guess"})
    assert response.get_json()["error"] == "invalid_client"


def test_ttl_is_the_smaller_of_default_and_approval(new_agent):
    made = make_client(max_token_ttl=120)
    body = new_agent(made).token().get_json()
    assert body["expires_in"] == 120


@pytest.mark.parametrize("settings", [{"INCLUDE_OWNER_IN_TOKENS": False}])
def test_owner_left_out_when_configured(client, settings, new_agent):
    body = new_agent().token().get_json()
    assert "owner" not in verify(client, body["access_token"])


def test_no_scope_asked_gives_the_approved_scopes_and_audiences(client, new_agent):
    made = make_client(scopes=("read", "list"), audiences=("https://a.example", "https://b.example"))
    body = new_agent(made).token().get_json()
    claims = verify(client, body["access_token"], audience="https://a.example")
    assert set(claims["scope"].split()) == {"read", "list"}
    assert sorted(claims["aud"]) == ["https://a.example", "https://b.example"]


def test_narrower_scope_and_resource(client, new_agent):
    made = make_client(scopes=("read", "list"), audiences=("https://a.example", "https://b.example"))
    body = new_agent(made).token(scope="list", resource="https://b.example").get_json()
    claims = verify(client, body["access_token"], audience="https://b.example")
    assert claims["scope"] == "list" and claims["aud"] == "https://b.example"


@pytest.mark.parametrize("params, error", [
    ({"scope": "write"}, "invalid_scope"),
    ({"scope": "read admin"}, "invalid_scope"),
    ({"resource": "https://evil.example"}, "invalid_target"),
    ({"audience": "https://evil.example"}, "invalid_target"),
    ({"resource": "not-a-uri"}, "invalid_target"),
    ({"resource": "https://api.example.com#frag"}, "invalid_target"),
    ({"authorization_details": '[{"type": "agent_task"}]'}, "invalid_authorization_details"),
])
def test_outside_the_approval_is_refused(new_agent, params, error):
    made = make_client()
    response = new_agent(made).token(**params)
    assert response.status_code == 400 and response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    [refused] = events("token.refused")
    assert refused.client_id == made.client_id and refused.reason == response.get_json()["error_description"]
    assert db.session.execute(select(IssuedToken)).first() is None


@pytest.mark.parametrize("status, error, words", [
    ("pending", "unauthorized_client", "pending approval"),
    ("suspended", "unauthorized_client", "suspended"),
    ("expired", "unauthorized_client", "expired"),
    ("denied", "invalid_client", "denied"),
    ("retired", "invalid_client", "retired"),
])
def test_client_status_rules(new_agent, status, error, words):
    made = make_client(status=status)
    response = new_agent(made).token()
    assert response.get_json()["error"] == error and words in response.get_json()["error_description"]


def test_unknown_client_is_invalid_client(client):
    """Answered as a wrong secret is (tests/test_client_authentication.py compares them)."""
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": "nobody",
                                           "client_secret": "x"})
    assert response.status_code == 401 and response.get_json() == {
        "error": "invalid_client", "error_description": AUTHENTICATION_FAILED}


@pytest.mark.parametrize("client_id", ["abc\x00def", "https://apps.example.com/a\x00b", "abc\x1b[2J"])
def test_a_client_id_with_control_characters_is_unknown_not_a_500(client, client_id):
    """A NUL would not even reach PostgreSQL's text: such an id is no client, said before a read."""
    for path, form in (("/token", {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"}),
                       ("/introspect", {"token": "t", "client_id": client_id, "client_secret": "x"})):
        response = client.post(path, data=form)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_client", path
    page = client.get("/authorize", query_string={"client_id": client_id, "response_type": "code"})
    assert page.status_code == 400 and "control characters" in page.get_data(as_text=True)


def test_expiry_is_enforced_at_request_time(client, new_agent):
    made = make_client()
    agent = new_agent(made)
    assert agent.token().status_code == 200
    clock.advance(91 * 24 * 3600)  # past the approval, before any sweep ran
    response = agent.token()
    assert response.get_json()["error"] == "unauthorized_client"
    db.session.expire_all()
    assert db.session.get(Client, made.client_id).status == "expired"
    assert events("client.expired", only="actor") == ["system"]


def test_grant_type_must_be_registered(new_agent):
    made = make_client()  # registered for client_credentials only
    response = new_agent(made).post("/token", {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "x",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
    assert response.get_json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", ""])
def test_unsupported_grant_types(new_agent, grant_type):
    made = make_client()
    response = new_agent(made).post("/token", {"grant_type": grant_type})
    assert response.get_json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("grant_type", ["authorization_code", "refresh_token"])
def test_a_machine_client_may_not_use_the_person_grants(new_agent, grant_type):
    made = make_client()  # registered for client_credentials only
    response = new_agent(made).post("/token", {"grant_type": grant_type, "code": "x", "refresh_token": "x"})
    body = response.get_json()
    assert body["error"] == "unauthorized_client" and grant_type in body["error_description"]


@contextlib.contextmanager
def driver_statements(engine):
    """The first words of every statement the database driver runs meanwhile, and COMMIT for
    each commit: below SQLAlchemy, since the client read goes to the driver directly."""
    statements, original = [], {}

    def note(sql):
        statements.append(" ".join(str(sql).split()[:3]))

    class Recording(psycopg.Cursor):
        def execute(self, query, *args, **kwargs):
            note(query)
            return super().execute(query, *args, **kwargs)

        def executemany(self, query, *args, **kwargs):
            note(query)
            return super().executemany(query, *args, **kwargs)

    def checkout(dbapi_connection, record, proxy):
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(note)  # sees BEGIN and COMMIT too
            return
        original[id(dbapi_connection)] = dbapi_connection.cursor_factory
        dbapi_connection.cursor_factory = Recording
        commit = dbapi_connection.commit  # psycopg sends BEGIN and COMMIT without a cursor
        dbapi_connection.commit = lambda: (statements.append("COMMIT"), commit())[1]

    def checkin(dbapi_connection, record):
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(None)
        elif id(dbapi_connection) in original:  # as it was before the block
            dbapi_connection.cursor_factory = original.pop(id(dbapi_connection))
            del dbapi_connection.commit

    listeners = [(engine, "checkout", checkout), (engine, "checkin", checkin)]
    for listener in listeners:
        event.listen(*listener)
    try:
        yield statements
    finally:
        for listener in listeners:
            event.remove(*listener)


@pytest.mark.parametrize("cached", [False, True])
def test_hot_path_budget(client, app, cached, new_agent):
    """One read of the client with its approval, one write transaction (the assertion's jti,
    the token row, the event: no audit head, which only the sequencer locks), nothing after
    the commit. From the client cache, the read is the write transaction's check of the record."""
    made = make_client()
    agent = new_agent(made)
    agent.token()  # warm the key cache (and the client cache)
    if not cached:
        app.extensions["ostiary.clients"].drop(made.client_id)
    db.session.remove()  # the test's own session holds no connection: every checkout is seen
    with driver_statements(db.engine) as statements:
        assert agent.token().status_code == 200
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1 and "client" in reads[0], statements
    begin = ["BEGIN IMMEDIATE"] if db.engine.dialect.name == "sqlite" else []  # psycopg's has no cursor
    start = begin + reads if cached else reads + begin  # uncached: the read first, in no transaction
    assert statements[:len(start)] == start, statements
    write = [s for s in statements if s != "BEGIN IMMEDIATE" and s != reads[0]]
    assert write == ["INSERT INTO assertion_jti", "INSERT INTO issued_token", "INSERT INTO audit_event",
                     "COMMIT"], statements


def test_token_requests_leave_the_console_session_alone(client, new_agent):
    """Nothing on the hot path opens the console's session cookie (no ``Vary: Cookie``)."""
    client.set_cookie("ostiary_console", "not-a-session")
    response = new_agent().token()
    assert response.status_code == 200
    assert "Cookie" not in response.headers.get("Vary", "") and "Set-Cookie" not in response.headers


@pytest.mark.parametrize("settings", [{"CLIENT_SECRET_TTL": 60}])
def test_an_expired_secret_is_refused(client, settings):
    made = make_client(auth_method="client_secret_post")
    clock.advance(61)
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": made.client_id,
                                           "client_secret": made.client_secret})
    assert response.get_json()["error"] == "invalid_client"
    assert "secret expired" in response.get_json()["error_description"]


def test_expired_assertion_rows_are_swept(new_agent, monkeypatch):
    from app.models import AssertionJti
    from app.oauth import client_auth
    made = make_client()
    agent = new_agent(made)
    agent.token()
    clock.advance(3600)
    monkeypatch.setattr(client_auth, "PURGE_ONE_IN", 1)
    agent.token()
    assert count(AssertionJti) == 1


def test_jtis_are_unique_unguessable_and_in_issuance_order():
    from app.oauth.rfc9068 import new_jti
    first = new_jti()
    clock.advance(0.001)
    try:
        later = [new_jti() for _ in range(1000)]
    finally:
        clock.reset()
    assert len(set(later)) == 1000 and all(first < jti for jti in later)
    assert all(len(jti) == 36 and jti.isascii() and "." not in jti for jti in later)
    assert len({jti[14:] for jti in later}) == 1000  # the random part alone tells them apart
