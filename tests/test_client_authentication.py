"""RFC 6749 §5.2 invalid_client: one answer for every failed client authentication, so that no
endpoint tells a stranger which client_ids are registered; the audit trail keeps the reason.
Only credentials that verified, sent by another method than the client's, are told that method."""
import base64
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AuditEvent, Client
from app.oauth.server import AUTHENTICATION_FAILED
from app.support import clock, hashing

from .factories import events, make_client, new_key
from .token_actions import ASSERTION_TYPE, ISSUER, assertion

# Each endpoint that authenticates clients, with the parameters it needs besides credentials.
ENDPOINTS = {
    "/token": {"grant_type": "client_credentials"},
    "/introspect": {"token": "not-a-token"},
    "/revoke": {"token": "not-a-token"},
    "/task/end": {"task_id": "no-such-task", "outcome": "done"},
}
REFUSAL_EVENTS = {"/token": "token.refused", "/introspect": "introspection.refused",
                  "/revoke": "revocation.refused", "/task/end": "task.end_refused"}


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def assertion_form(made, **options) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(made, ISSUER, **options)}


# name -> builds (form fields, headers) from the clients of the test; and what the trail says.
CASES = {
    "unknown client, basic": (lambda c: ({}, basic("nobody", "guess")), "no client has this client_id"),
    "wrong secret, basic": (lambda c: ({}, basic(c["basic"].client_id, "not-the-secret")), "wrong client secret"),
    "unknown client, post": (lambda c: ({"client_id": "nobody", "client_secret": "guess"}, {}),
                             "no client has this client_id"),
    "wrong secret, post": (lambda c: ({"client_id": c["post"].client_id, "client_secret": "not-the-secret"}, {}),
                           "wrong client secret"),
    "secret for a key client": (lambda c: ({}, basic(c["keyed"].client_id, "guess")), "has no secret"),
    "unknown client, assertion": (lambda c: (assertion_form(c["keyed"], sub="nobody", iss="nobody"), {}),
                                  "no client has the assertion's sub"),
    "wrong key, assertion": (lambda c: (assertion_form(c["keyed"], key=new_key("k1")), {}), "private_key_jwt"),
    "unknown kid, assertion": (lambda c: (assertion_form(c["keyed"], header={"kid": "guess"}), {}), "kid"),
    "assertion for a secret client": (
        lambda c: (assertion_form(c["keyed"], sub=c["basic"].client_id, iss=c["basic"].client_id), {}),
        "keys cannot be used"),
}


@pytest.fixture
def clients(client):
    return {"basic": make_client(auth_method="client_secret_basic"),
            "post": make_client(auth_method="client_secret_post"), "keyed": make_client()}


def answer(response) -> tuple:
    return response.status_code, response.get_data(), response.headers.get("WWW-Authenticate")


def last_refusal(path: str) -> AuditEvent:
    return events(REFUSAL_EVENTS[path])[-1]


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/task/end"])
def test_every_failure_gets_the_same_answer(client, clients, path):
    """Unknown client, wrong secret, wrong key, another method: status, body and challenge
    are byte for byte the same; only the audit trail tells them apart."""
    answers = {}
    for name, (build, reason) in CASES.items():
        form, headers = build(clients)
        response = client.post(path, data={**ENDPOINTS[path], **form}, headers=headers)
        answers[name] = answer(response)
        event = last_refusal(path)
        assert reason in event.reason and event.actor == "anonymous", (name, event.reason)
    assert len(set(answers.values())) == 1, answers
    status, body, challenge = answers["unknown client, basic"]
    assert status == 401
    assert challenge == f'Basic error="invalid_client", error_description="{AUTHENTICATION_FAILED}"'
    assert body == (b'{"error": "invalid_client", "error_description": "' + AUTHENTICATION_FAILED.encode() + b'"}')


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/task/end"])
def test_the_right_secret_sent_another_way_is_told_the_registered_method(client, clients, path):
    """The one refusal that says more: the secret verified, so whoever sent it holds it, and the
    method its client registered is all it learns (app.oauth.server, WRONG_METHOD)."""
    basic_client, post_client = clients["basic"], clients["post"]
    for form, headers, registered in [
            ({"client_id": basic_client.client_id, "client_secret": basic_client.client_secret}, {},
             "client_secret_basic"),
            ({}, basic(post_client.client_id, post_client.client_secret), "client_secret_post")]:
        response = client.post(path, data={**ENDPOINTS[path], **form}, headers=headers)
        body = response.get_json()
        assert response.status_code == 401 and body["error"] == "invalid_client", body
        assert f"registered token_endpoint_auth_method {registered}" in body["error_description"], body
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        event = last_refusal(path)
        assert event.actor == "anonymous" and f"the client registered {registered}" in event.reason


def test_a_method_the_server_no_longer_allows_is_said_to_whoever_holds_the_secret(app, client, clients):
    post = clients["post"]
    app.config["ALLOWED_AUTH_METHODS"] = ["private_key_jwt", "client_secret_basic"]
    response = client.post("/token", data={**ENDPOINTS["/token"], "client_id": post.client_id,
                                           "client_secret": post.client_secret})
    body = response.get_json()
    assert response.status_code == 401 and body["error"] == "invalid_client"
    assert "token_endpoint_auth_method client_secret_post is no longer allowed" in body["error_description"]
    wrong = client.post("/token", data={**ENDPOINTS["/token"], "client_id": post.client_id,
                                        "client_secret": "not-the-secret"}).get_json()
    assert wrong["error_description"] == AUTHENTICATION_FAILED


def test_the_answer_is_the_same_at_every_endpoint(client, clients):
    answers = {answer(client.post(path, data=fields, headers=basic("nobody", "guess")))
               for path, fields in ENDPOINTS.items()}
    assert len(answers) == 1


@pytest.mark.parametrize("name", ["wrong secret, basic", "unknown client, basic"])
def test_the_trail_names_the_claimed_client(client, clients, name):
    form, headers = CASES[name][0](clients)
    client.post("/token", data={**ENDPOINTS["/token"], **form}, headers=headers)
    claimed = "nobody" if name.startswith("unknown") else clients["basic"].client_id
    event = last_refusal("/token")
    assert event.client_id == claimed and event.reason.startswith(AUTHENTICATION_FAILED)
    assert "not-the-secret" not in event.reason and "guess" not in event.reason


RIGHT = {"basic": lambda made: ({}, basic(made.client_id, made.client_secret)),
         "post": lambda made: ({"client_id": made.client_id, "client_secret": made.client_secret}, {}),
         "keyed": lambda made: (assertion_form(made), {})}


@pytest.mark.parametrize("method", list(RIGHT))
def test_the_right_credentials_still_work(client, clients, method):
    """The cases above fail for the reason they say, not for a broken request."""
    form, headers = RIGHT[method](clients[method])
    assert client.post("/token", data={**ENDPOINTS["/token"], **form}, headers=headers).status_code == 200


@pytest.mark.parametrize("name", ["unknown client, basic", "wrong secret, basic", "unknown client, post",
                                  "secret for a key client"])
def test_an_unknown_client_costs_the_same_hash_as_a_wrong_secret(client, clients, monkeypatch, name):
    calls = []
    real = hashing.hash_secret
    monkeypatch.setattr(hashing, "hash_secret", lambda secret: calls.append(secret) or real(secret))
    form, headers = CASES[name][0](clients)
    client.post("/token", data={**ENDPOINTS["/token"], **form}, headers=headers)
    assert len(calls) >= 1 and len(calls) == len([c for c in calls if c in ("guess", "not-the-secret")])


def test_an_expired_secret_is_said_only_to_whoever_knows_it(client, clients):
    """An expired secret, once matched, may be told (the caller holds it); a wrong one may not."""
    made = clients["basic"]
    db.session.get(Client, made.client_id).secret_expires_at = clock.now() - timedelta(seconds=1)
    db.session.commit()
    right = client.post("/token", data=ENDPOINTS["/token"], headers=basic(made.client_id, made.client_secret))
    assert right.status_code == 401 and "expired" in right.get_json()["error_description"]
    wrong = client.post("/token", data=ENDPOINTS["/token"], headers=basic(made.client_id, "not-the-secret"))
    assert wrong.get_json()["error_description"] == AUTHENTICATION_FAILED


@pytest.mark.parametrize("headers, form, words", [
    ({"Authorization": "Basic "}, {}, "not valid HTTP Basic"),
    ({}, {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "not.a.jwt"}, None),
])
def test_a_malformed_request_keeps_its_own_description(client, headers, form, words):
    """These depend on the request alone, never on who is registered."""
    response = client.post("/token", data={**ENDPOINTS["/token"], **form}, headers=headers)
    description = response.get_json()["error_description"]
    assert response.get_json()["error"] == "invalid_client" and description != AUTHENTICATION_FAILED
    assert words is None or words in description
