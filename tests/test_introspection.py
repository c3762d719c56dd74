"""RFC 7662 introspection: active only while issued, unexpired, unrevoked and the client active."""
import pytest

from app import clock
from app.registration import lifecycle

from .factories import make_client
from .token_actions import test_client_agent

API = "https://api.example.com"


@pytest.fixture
def agent(client):
    return test_client_agent(client, make_client())


@pytest.fixture
def service(client):
    """A relying service: registered as a client, approved for its own resource identifier."""
    return test_client_agent(client, make_client(auth_method="client_secret_basic", audiences=(API,)))


def issue(agent):
    return agent.token().get_json()["access_token"]


def test_active_token_shows_its_claims(agent, service):
    token = issue(agent)
    body = service.introspect(token).get_json()
    assert body["active"] is True and body["client_id"] == agent.made.client_id
    assert body["scope"] == "read" and body["aud"] == API and body["token_type"] == "Bearer"
    assert {"iss", "sub", "exp", "iat", "jti", "owner"} <= set(body)
    assert agent.introspect(token).get_json()["active"] is True  # its own client may ask too


def test_response_is_not_cached(agent, service):
    response = service.introspect(issue(agent))
    assert response.headers["Cache-Control"] == "no-store"


def test_a_service_for_another_audience_learns_nothing(client, agent):
    other = test_client_agent(client, make_client(auth_method="client_secret_basic",
                                                  audiences=("https://elsewhere.example",)))
    assert other.introspect(issue(agent)).get_json() == {"active": False}


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_unknown_tokens_are_inactive(service, token):
    assert service.introspect(token).get_json() == {"active": False}


def test_missing_token_is_invalid_request(service):
    assert service.post("/introspect", {}).get_json()["error"] == "invalid_request"


def test_expired_is_inactive(agent, service):
    token = issue(agent)
    clock.advance(301)
    assert service.introspect(token).get_json() == {"active": False}


def test_revoked_is_inactive(agent, service):
    token = issue(agent)
    agent.revoke(token)
    assert service.introspect(token).get_json() == {"active": False}


@pytest.mark.parametrize("change", ["suspend", "retire"])
def test_suspending_or_retiring_the_client_deactivates_its_tokens_at_once(agent, service, change):
    token = issue(agent)
    if change == "suspend":
        lifecycle.suspend(agent.made.client_id, reason="incident", actor="admin:test")
    else:
        lifecycle.retire(agent.made.client_id, actor="admin:test")
    assert service.introspect(token).get_json() == {"active": False}
    if change == "suspend":
        lifecycle.reactivate(agent.made.client_id, actor="admin:test")
        assert service.introspect(token).get_json()["active"] is True


def test_expired_approval_deactivates_tokens(client):
    agent = test_client_agent(client, make_client(max_token_ttl=300))
    token = issue(agent)
    service = test_client_agent(client, make_client(auth_method="client_secret_basic"))
    from datetime import timedelta

    from app.extensions import db
    from app.models import Client
    approval = db.session.get(Client, agent.made.client_id).approval
    approval.expires_at = clock.now() + timedelta(seconds=10)
    db.session.commit()
    clock.advance(20)
    assert service.introspect(token).get_json() == {"active": False}


@pytest.mark.parametrize("headers, error, status", [
    ({}, "invalid_client", 401),
    ({"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="}, "invalid_client", 401),
    ({"Authorization": "Basic "}, "invalid_client", 401),
    ({"Authorization": "Basic //79"}, "invalid_client", 401),  # not UTF-8 inside
])
def test_callers_must_authenticate(client, agent, headers, error, status):
    response = client.post("/introspect", data={"token": issue(agent)}, headers=headers)
    assert response.status_code == status and response.get_json()["error"] == error


def test_a_suspended_caller_may_not_introspect(client, agent, service):
    lifecycle.suspend(service.made.client_id, reason="x", actor="admin:test")
    assert service.introspect(issue(agent)).get_json()["error"] == "unauthorized_client"


def test_unsupported_hint(agent, service):
    response = service.post("/introspect", {"token": issue(agent), "token_type_hint": "saml"})
    assert response.get_json()["error"] == "unsupported_token_type"
