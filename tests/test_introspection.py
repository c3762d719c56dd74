"""RFC 7662 introspection: active only while issued, unexpired, unrevoked and the client active."""
import pytest

from app.registration import lifecycle
from app.support import clock

API = "https://api.example.com"


@pytest.fixture
def agent(new_agent):
    return new_agent()


def relying_service(new_agent, resource=API):
    """A relying service: registered as a client, approved as the relying service of ``resource``."""
    return new_agent(auth_method="client_secret_basic", audiences=(resource,), serves=(resource,))


@pytest.fixture
def service(new_agent):
    return relying_service(new_agent)


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


def test_a_service_for_another_audience_learns_nothing(new_agent, agent):
    other = relying_service(new_agent, "https://elsewhere.example")
    assert other.introspect(issue(agent)).get_json() == {"active": False}


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "private_key_jwt"])
def test_a_client_approved_to_call_the_resource_is_not_its_relying_service(new_agent, agent, auth_method):
    """RFC 7662 §4: being allowed to call API does not make a client the API: another agent
    approved for the same audience must not read this agent's sub, owner and task."""
    peer = new_agent(auth_method=auth_method, audiences=(API,))
    token = issue(agent)
    assert peer.introspect(token).get_json() == {"active": False}
    assert peer.introspect(issue(peer)).get_json()["active"] is True  # its own token, still


def test_serving_one_resource_does_not_reach_tokens_for_another(new_agent):
    agent = new_agent(audiences=(API, "https://other.example"))
    service = relying_service(new_agent, "https://other.example")
    token = agent.token(resource=API).get_json()["access_token"]
    assert service.introspect(token).get_json() == {"active": False}


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


def test_a_token_issued_before_a_suspension_stays_dead_after_reactivation(agent, service):
    before = [issue(agent), issue(agent)]
    lifecycle.suspend(agent.made.client_id, reason="key compromise", actor="admin:test")
    lifecycle.reactivate(agent.made.client_id, actor="admin:test")
    after = issue(agent)
    assert [service.introspect(t).get_json() for t in before] == [{"active": False}] * 2
    assert service.introspect(after).get_json()["active"] is True


def test_expired_approval_deactivates_tokens(new_agent):
    agent = new_agent(max_token_ttl=300)
    token = issue(agent)
    service = relying_service(new_agent)
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
