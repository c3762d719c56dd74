"""Agents acting for a person: the authorization endpoint (RFC 6749 §4.1, PKCE RFC 7636, iss
RFC 9207, resource RFC 8707), the code and refresh token grants, consent and the approval gate."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    AccessRequest,
    AuthorizationCode,
    Consent,
    IssuedToken,
    RefreshToken,
)
from app.models.client import PENDING
from app.oauth.authorization import redirect_matches
from app.support import clock

from .console_helpers import Console, csrf_token, fresh_context_per_request
from .factories import count, events, make_client
from .token_actions import ISSUER, TOKEN_EXCHANGE, task, test_client_agent

API = "https://api.example.com"
REDIRECT = "https://agent.example.com/callback"
NATIVE = "http://127.0.0.1/callback"
PERSON_GRANTS = ["authorization_code", "refresh_token"]
HIDDEN = re.compile(r'<input type="hidden" name="(?!csrf_token)([^"]+)" value="([^"]*)">')


def jwt_claims(token: str) -> dict:
    """The claims, unverified: the signature is checked by introspection and other tests."""
    return pyjwt.decode(token, options={"verify_signature": False})


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def person_agent(status: str = "active", *, auth_method: str = "none", grant_types=PERSON_GRANTS,
                 redirect_uris=(REDIRECT, NATIVE), scopes=("read", "write")):
    return make_client(auth_method, status, scopes=scopes, grant_types=list(grant_types),
                       redirect_uris=list(redirect_uris))


def authorize_params(made, challenge: str, **extra) -> dict:
    return {"response_type": "code", "client_id": made.client_id, "redirect_uri": REDIRECT,
            "scope": "read", "state": "s-123", "code_challenge": challenge, "code_challenge_method": "S256",
            **extra}


def redirected(response) -> dict:
    """The query parameters of a redirect to the client (its redirect URI)."""
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


# ---- metadata and registration --------------------------------------------------------------

def test_metadata_advertises_the_authorization_endpoint(client):
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    assert metadata["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert {"authorization_code", "refresh_token"} <= set(metadata["grant_types_supported"])
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]
    assert "none" not in metadata["revocation_endpoint_auth_methods_supported"]


def test_a_public_client_registers_for_the_person_grants(client):
    response = client.post("/register", json={
        "client_name": "desktop assistant", "token_endpoint_auth_method": "none",
        "grant_types": PERSON_GRANTS, "response_types": ["code"], "redirect_uris": [NATIVE], "scope": "read"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
    assert body["response_types"] == ["code"] and body["status"] == PENDING


@pytest.mark.parametrize("metadata, error, words", [
    ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
     "invalid_client_metadata", "public client"),
    ({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "client_credentials"],
      "redirect_uris": [REDIRECT]}, "invalid_client_metadata", "public client"),
    ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri", "needs redirect_uris"),
    ({"grant_types": ["refresh_token", "client_credentials"]}, "invalid_client_metadata", "needs authorization_code"),
    ({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "response_types": ["token"]},
     "invalid_client_metadata", "response_types must be"),
    ({"grant_types": ["client_credentials"], "response_types": ["code"]}, "invalid_client_metadata",
     "response_types must be"),
])
def test_registration_refuses_what_the_person_grants_do_not_allow(client, metadata, error, words):
    response = client.post("/register", json={"client_name": "x", **metadata})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == error and words in body["error_description"]


# ---- the authorization request, before the person -------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"client_id": None}, "names no client"),
    ({"client_id": "no-such-client"}, "not registered"),
    ({"redirect_uri": "https://attacker.example/callback"}, "not one the client registered"),
    ({"redirect_uri": "https://agent.example.com/callback/more"}, "not one the client registered"),
    ({"redirect_uri": "http://127.0.0.1.attacker.example:8000/callback"}, "not one the client registered"),
    ({"redirect_uri": None}, "registered several"),
])
def test_an_untrusted_client_or_redirect_uri_is_shown_never_redirected(client, change, words):
    made = person_agent()
    params = {k: v for k, v in {**authorize_params(made, pkce()[1]), **change}.items() if v is not None}
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 400 and "Location" not in response.headers
    assert words in response.get_data(as_text=True)


@pytest.mark.parametrize("change, error, words", [
    ({"code_challenge": None}, "invalid_request", "code_challenge is required"),
    ({"code_challenge_method": None}, "invalid_request", "must be S256"),
    ({"code_challenge_method": "plain"}, "invalid_request", "must be S256"),
    ({"code_challenge": "too-short"}, "invalid_request", "43 base64url"),
    ({"response_type": "token"}, "unsupported_response_type", "must be code"),
    ({"scope": "read admin"}, "invalid_scope", "not in the client's approval"),
    ({"resource": "https://other.example.com"}, "invalid_target", "not in the client's approval"),
    ({"resource": "not-a-uri"}, "invalid_target", "absolute URI"),
])
def test_other_errors_go_back_to_the_client_with_state_and_iss(client, change, error, words):
    made = person_agent()
    params = {k: v for k, v in {**authorize_params(made, pkce()[1]), **change}.items() if v is not None}
    answer = redirected(client.get("/authorize", query_string=params))
    assert answer["error"] == error and words in answer["error_description"]
    assert answer["state"] == "s-123" and answer["iss"] == ISSUER
    assert "code" not in answer


def test_a_repeated_parameter_is_refused(client):
    made = person_agent()
    params = list(authorize_params(made, pkce()[1]).items()) + [("scope", "write")]
    answer = redirected(client.get("/authorize", query_string=params))
    assert answer["error"] == "invalid_request" and "scope must be given once" in answer["error_description"]


def test_a_client_not_registered_for_the_code_grant_is_refused(client):
    made = make_client("client_secret_basic", redirect_uris=[REDIRECT])
    answer = redirected(client.get("/authorize", query_string=authorize_params(made, pkce()[1])))
    assert answer["error"] == "unauthorized_client"


def test_a_suspended_client_is_refused(client):
    made = person_agent("suspended")
    answer = redirected(client.get("/authorize", query_string=authorize_params(made, pkce()[1])))
    assert answer["error"] == "unauthorized_client" and "suspended" in answer["error_description"]


def test_without_a_person_the_request_waits_for_sign_in(client):
    made = person_agent()
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/signin" and parse_qs(location.query)["next"][0].startswith("/authorize?")


@pytest.mark.parametrize("given, registered, matches", [
    ("https://a.example/cb", "https://a.example/cb", True),
    ("https://a.example/cb?x=1", "https://a.example/cb", False),
    ("https://a.example:8443/cb", "https://a.example/cb", False),
    ("http://127.0.0.1:53127/cb", "http://127.0.0.1/cb", True),
    ("http://[::1]:8000/cb", "http://[::1]/cb", True),
    ("http://localhost:8000/cb", "http://127.0.0.1/cb", False),
    ("http://127.0.0.1:8000/other", "http://127.0.0.1/cb", False),
    ("http://127.0.0.1:8000/cb#frag", "http://127.0.0.1/cb", False),
    ("http://user@127.0.0.1:8000/cb", "http://127.0.0.1/cb", False),
    ("http://127.0.0.1:99999/cb", "http://127.0.0.1/cb", False),
    ("https://127.0.0.1:8000/cb", "https://127.0.0.1/cb", False),
])
def test_redirect_uris_compare_exactly_but_for_a_loopback_port(given, registered, matches):
    assert redirect_matches(given, registered) is matches


# ---- with a person signed in ----------------------------------------------------------------

PASSWORD = "a long enough password for alice"


@pytest.fixture
def person(app, client):
    """Alice, a local account, signed in on ``client``."""
    from app.models import Person
    from app.people import accounts
    fresh_context_per_request(app)
    accounts.create("alice", PASSWORD, "admin:test", email="alice@example.com")
    page = client.get("/signin")
    response = client.post("/signin", data={"username": "alice", "password": PASSWORD,
                                            "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 303, response.get_data(as_text=True)
    return db.session.execute(select(Person).where(Person.username == "alice")).scalar_one()


def consent_page(client, params) -> str:
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 200, response.headers.get("Location")
    return response.get_data(as_text=True)


def decide(client, params, decision: str = "allow", remember: bool = False):
    html = consent_page(client, params)
    form = {**dict(HIDDEN.findall(html)), "decision": decision, "csrf_token": csrf_token(html)}
    if remember:
        form["remember"] = "yes"
    return client.post("/authorize", data=form)


def code_for(client, made, **extra) -> tuple[str, str]:
    """Authorize ``made`` for the signed-in person; returns (code, verifier)."""
    verifier, challenge = pkce()
    answer = redirected(decide(client, authorize_params(made, challenge, **extra)))
    assert answer["state"] == "s-123" and answer["iss"] == ISSUER
    return answer["code"], verifier


def redeem(client, made, code, verifier, **extra):
    return client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                       "redirect_uri": REDIRECT, "client_id": made.client_id, **extra})


def refresh(client, made, token, **extra):
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                       "client_id": made.client_id, **extra})


def introspected(client, token) -> dict:
    server = make_client("client_secret_basic", serves=[API])
    return client.post("/introspect", data={"token": token},
                       auth=(server.client_id, server.client_secret)).get_json()


def test_the_person_consents_and_the_agent_gets_a_token_for_them(client, person):
    made = person_agent()
    html = consent_page(client, authorize_params(made, pkce()[1]))
    assert "test agent" in html and "Self-asserted" in html and "<code>read</code>" in html
    code, verifier = code_for(client, made)
    assert count(AuthorizationCode, client_id=made.client_id) == 1
    response = redeem(client, made, code, verifier)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read" and body["refresh_token"]
    claims = jwt_claims(body["access_token"])
    assert claims["sub"] == person.public_id and claims["client_id"] == made.client_id
    assert claims["aud"] == API and claims["iss"] == ISSUER
    assert introspected(client, body["access_token"])["active"] is True
    [granted] = events("authorization.granted")
    assert granted.actor == f"person:{person.public_id}" and granted.client_id == made.client_id
    [issued] = events("token.issued", client_id=made.client_id)
    assert issued.data["grant_type"] == "authorization_code" and issued.data["person"] == person.public_id


def test_a_code_is_used_once_and_a_second_use_revokes_what_the_first_issued(client, person):
    made = person_agent()
    code, verifier = code_for(client, made)
    first = redeem(client, made, code, verifier).get_json()
    again = redeem(client, made, code, verifier)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant" and "used before" in again.get_json()["error_description"]
    assert introspected(client, first["access_token"])["active"] is False
    assert refresh(client, made, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    [reused] = events("authorization_code.reused")
    assert reused.client_id == made.client_id and reused.data["revoked"]


@pytest.mark.parametrize("change, error, words", [
    ({"code_verifier": None}, "invalid_request", "requires PKCE"),
    ({"code_verifier": "short"}, "invalid_request", "43 to 128"),
    ({"code_verifier": "x" * 50}, "invalid_grant", "does not match"),
    ({"redirect_uri": "https://agent.example.com/other"}, "invalid_grant", "redirect_uri must be"),
    ({"code": "no-such-code"}, "invalid_grant", "unknown"),
    ({"code": None}, "invalid_request", "code is required"),
    ({"scope": "write"}, "invalid_grant", "was not granted"),
    ({"resource": "https://other.example.com"}, "invalid_target", "not part of the person's authorization"),
])
def test_a_token_request_that_does_not_match_its_code_is_refused(client, person, change, error, words):
    made = person_agent()
    code, verifier = code_for(client, made)
    data = {k: v for k, v in {"code": code, "code_verifier": verifier, "redirect_uri": REDIRECT, **change}.items()
            if v is not None}
    response = client.post("/token", data={"grant_type": "authorization_code", "client_id": made.client_id, **data})
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == error and words in response.get_json()["error_description"]
    assert count(IssuedToken, client_id=made.client_id) == 0


def test_a_code_expires(client, person, app):
    made = person_agent()
    code, verifier = code_for(client, made)
    clock.advance(app.config["AUTHORIZATION_CODE_TTL"] + 1)
    body = redeem(client, made, code, verifier).get_json()
    assert body["error"] == "invalid_grant" and "expired" in body["error_description"]


def test_a_code_is_bound_to_its_client(client, person):
    made, other = person_agent(), person_agent()
    code, verifier = code_for(client, made)
    body = redeem(client, other, code, verifier).get_json()
    assert body["error"] == "invalid_grant" and "another client" in body["error_description"]


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(client, person):
    made = person_agent()
    first = redeem(client, made, *code_for(client, made)).get_json()
    second = refresh(client, made, first["refresh_token"])
    assert second.status_code == 200, second.get_json()
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert jwt_claims(second["access_token"])["sub"] == person.public_id
    reused = refresh(client, made, first["refresh_token"])
    assert reused.get_json()["error"] == "invalid_grant" and "family" in reused.get_json()["error_description"]
    assert introspected(client, second["access_token"])["active"] is False
    assert refresh(client, made, second["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert count(RefreshToken, client_id=made.client_id) == 2
    [event] = events("refresh_token.reused")
    assert len(event.data["revoked"]) == 2


def test_a_family_of_refresh_tokens_ends_where_it_began_however_often_it_rotates(client, person, app):
    """REFRESH_TOKEN_TTL counts from the code's exchange: rotation replaces a token, it does not
    extend the person's authorization (a token used every day would otherwise live for ever)."""
    made = person_agent()
    token = redeem(client, made, *code_for(client, made)).get_json()["refresh_token"]
    ttl = int(app.config["REFRESH_TOKEN_TTL"])
    ends = {row.expires_at for row in db.session.scalars(select(RefreshToken))}
    for _ in range(3):
        clock.advance(ttl // 4)
        answer = refresh(client, made, token)
        assert answer.status_code == 200, answer.get_json()
        token = answer.get_json()["refresh_token"]
    db.session.expire_all()
    assert {row.expires_at for row in db.session.scalars(select(RefreshToken))} == ends  # one end, four tokens
    clock.advance(ttl // 4 + 1)
    body = refresh(client, made, token).get_json()
    assert body["error"] == "invalid_grant" and "must authorize the client again" in body["error_description"]


def test_a_refresh_may_narrow_the_scope_never_widen_it(client, person):
    made = person_agent()
    first = redeem(client, made, *code_for(client, made, scope="read write")).get_json()
    assert first["scope"] == "read write"
    narrowed = refresh(client, made, first["refresh_token"], scope="read").get_json()
    assert narrowed["scope"] == "read"
    widened = refresh(client, made, narrowed["refresh_token"], scope="read admin").get_json()
    assert widened["error"] == "invalid_grant"


def test_a_disabled_person_is_no_longer_acted_for(client, person):
    from app.people import accounts
    made = person_agent()
    first = redeem(client, made, *code_for(client, made)).get_json()
    accounts.disable("alice", "admin:test", "left")
    body = refresh(client, made, first["refresh_token"]).get_json()
    assert body["error"] == "invalid_grant" and "no longer an active user" in body["error_description"]


def test_a_public_client_cannot_use_client_credentials(client):
    made = person_agent(grant_types=["authorization_code"])
    body = client.post("/token", data={"grant_type": "client_credentials", "client_id": made.client_id}).get_json()
    assert body["error"] == "invalid_client"


def test_a_confidential_client_authenticates_for_its_code(client, person):
    made = person_agent(auth_method="client_secret_basic")
    code, verifier = code_for(client, made)
    unauthenticated = redeem(client, made, code, verifier)
    assert unauthenticated.status_code == 401 and unauthenticated.get_json()["error"] == "invalid_client"
    response = client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                           "redirect_uri": REDIRECT}, auth=(made.client_id, made.client_secret))
    assert response.status_code == 200, response.get_json()


def test_a_native_client_may_use_any_loopback_port(client, person):
    made = person_agent()
    verifier, challenge = pkce()
    redirect_uri = "http://127.0.0.1:53127/callback"
    response = decide(client, authorize_params(made, challenge, redirect_uri=redirect_uri))
    location = response.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert redeem(client, made, code, verifier, redirect_uri=redirect_uri).status_code == 200


def test_the_person_may_deny(client, person):
    made = person_agent()
    answer = redirected(decide(client, authorize_params(made, pkce()[1]), decision="deny"))
    assert answer["error"] == "access_denied" and answer["state"] == "s-123" and answer["iss"] == ISSUER
    assert count(AuthorizationCode) == 0 and len(events("authorization.denied")) == 1


def test_a_remembered_consent_is_not_asked_again_unless_more_is_asked(client, person):
    made = person_agent()
    decide(client, authorize_params(made, pkce()[1]), remember=True)
    assert count(Consent, person_id=person.id, client_id=made.client_id) == 1
    again = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert "code" in redirected(again)
    assert [(e.data["consent"], e.data["remember"]) for e in events("authorization.granted")] == [
        ("given", True), ("remembered", False)]
    more = client.get("/authorize", query_string=authorize_params(made, pkce()[1], scope="read write"))
    assert more.status_code == 200  # asked again: write was never consented to


def test_the_consent_post_is_csrf_protected(client, person):
    made = person_agent()
    consent_page(client, authorize_params(made, pkce()[1]))
    response = client.post("/authorize", data={**authorize_params(made, pkce()[1]), "decision": "allow"})
    assert response.status_code == 400 and "Location" not in response.headers
    assert count(AuthorizationCode) == 0


def test_a_pending_agent_gets_no_code_and_the_person_can_request_access(client, person):
    made = person_agent(PENDING)
    page = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "waiting for your administrators" in html
    response = client.post("/authorize/request-access", data={
        "client_id": made.client_id, "reason": "I need it for the quarterly report",
        "csrf_token": csrf_token(html)})
    assert response.status_code == 200 and "your reason is with the administrators" in response.get_data(as_text=True)
    [request] = db.session.execute(select(AccessRequest)).scalars().all()
    assert request.client_id == made.client_id and request.person_id == person.id
    [event] = events("access.requested")
    assert event.actor == f"person:{person.public_id}" and event.data["reason"].startswith("I need it")
    assert count(AuthorizationCode) == 0


@pytest.mark.parametrize("reason, words", [("", "Say why"), ("x" * 1001, "at most 1000")])
def test_a_request_for_access_needs_a_reason(client, person, reason, words):
    made = person_agent(PENDING)
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    response = client.post("/authorize/request-access", data={
        "client_id": made.client_id, "reason": reason, "csrf_token": csrf_token(html)})
    assert response.status_code == 400 and words in response.get_data(as_text=True)
    assert count(AccessRequest) == 0


def test_the_pages_forbid_framing(client, person):
    made = person_agent()
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_my_agents_lists_the_connected_agents_and_disconnecting_kills_their_tokens(client, person):
    made = person_agent()
    decide(client, authorize_params(made, pkce()[1]), remember=True)
    verifier, challenge = pkce()
    code = redirected(client.get("/authorize", query_string=authorize_params(made, challenge)))["code"]
    tokens = redeem(client, made, code, verifier).get_json()
    page = client.get("/my/agents")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "test agent" in html and "<code>read</code>" in html
    response = client.post(f"/my/agents/{made.client_id}/disconnect", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    assert "1 access token(s) stopped working" in client.get("/my/agents").get_data(as_text=True)
    assert introspected(client, tokens["access_token"])["active"] is False
    assert refresh(client, made, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert count(Consent) == 0
    [event] = events("authorization.withdrawn")
    assert event.actor == f"person:{person.public_id}" and event.data["refresh_tokens"] == 1
    again = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert again.status_code == 200  # the consent is asked for again


def test_only_the_person_disconnects_their_own_agents(client, person, app):
    made = person_agent()
    html = consent_page(client, authorize_params(made, pkce()[1]))  # a page with the session's CSRF token
    response = client.post(f"/my/agents/{made.client_id}/disconnect", data={"csrf_token": csrf_token(html)})
    assert "not connected to you" in client.get(response.headers["Location"]).get_data(as_text=True)
    other = app.test_client()
    assert other.get("/my/agents").status_code == 303  # not signed in: to the sign-in page


def test_a_persons_token_exchanged_for_a_task_names_the_person_and_the_agent_in_act(client, person):
    made = person_agent(auth_method="client_secret_basic", grant_types=[*PERSON_GRANTS, TOKEN_EXCHANGE])
    code, verifier = code_for(client, made)
    tokens = client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                         "redirect_uri": REDIRECT}, auth=(made.client_id, made.client_secret)).get_json()
    response = test_client_agent(client, made).exchange(tokens["access_token"], authorization_details=task())
    assert response.status_code == 200, response.get_json()
    claims = jwt_claims(response.get_json()["access_token"])
    assert claims["sub"] == person.public_id and claims["client_id"] == made.client_id
    assert claims["act"] == {"sub": made.client_id}
    assert claims["authorization_details"][0]["intent"] == "summarize-reports"


def test_the_administrator_sees_who_asked_for_a_pending_agent_and_why(client, person):
    made = person_agent(PENDING)
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    client.post("/authorize/request-access", data={"client_id": made.client_id, "csrf_token": csrf_token(html),
                                                   "reason": "for the <b>quarterly</b> report"})
    console = Console(client, username="admin-bob")  # an administrator, not the person alice
    console.create_admin()
    console.login()
    assert "asked for by 1 person" in client.get("/console/pending").get_data(as_text=True)
    page = client.get(f"/console/clients/{made.client_id}").get_data(as_text=True)
    assert "Asked for by 1 person" in page and "alice" in page
    assert "for the &lt;b&gt;quarterly&lt;/b&gt; report" in page
