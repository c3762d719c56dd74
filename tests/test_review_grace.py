"""A client not renewed within REVIEW_GRACE_DAYS of its review date gets no token from the
moment its grace ends, whether the sweep has suspended it yet or not; its tokens stop being
active at introspection and exchange, as when an approval runs out (app.oauth.status)."""
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AuditEvent, Client, IssuedToken
from app.oauth import tokens
from app.registration import approvals
from app.support import clock

from .console_helpers import Console
from .factories import ACTOR, count, make_client
from .test_client_cache import cached, fresh_reads  # noqa: F401 (a fixture)
from .test_introspection import API, relying_service

DAY = 86400
REVIEW, GRACE = 30, 14  # the factory's review date; the default OSTIARY_REVIEW_GRACE_DAYS


def to_grace_end(seconds_before: int = 0) -> None:
    """Move the clock to ``seconds_before`` the end of the factory client's grace period."""
    clock.advance((REVIEW + GRACE) * DAY - seconds_before)


def status_of(client_id: str) -> str:
    db.session.expire_all()
    return db.session.get(Client, client_id).status


def test_the_token_endpoint_refuses_a_client_whose_grace_has_ended(new_agent, app):
    made = make_client(auth_method="client_secret_basic")
    agent = new_agent(made)
    to_grace_end(seconds_before=60)
    assert agent.token().status_code == 200  # overdue, within its grace: it still works
    clock.advance(60)
    response = agent.token()
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "unauthorized_client"
    due = (clock.now() - timedelta(days=GRACE)).date().isoformat()
    assert body["error_description"] == (
        f"the client's review was due on {due} and is overdue past its {GRACE}-day grace period; "
        "its owner must ask an administrator to renew it")
    assert count(IssuedToken, client_id=made.client_id) == 1
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 1
    assert status_of(made.client_id) == "active"  # refused at once; the sweep suspends it


def test_no_refusal_rests_on_the_cached_record(new_agent, app, fresh_reads):  # noqa: F811
    """The cache serves only records that would get a token: past the grace, the record is
    read again, and the refusal is decided on that read."""
    made = make_client(auth_method="client_secret_basic")
    agent = new_agent(made)
    to_grace_end(seconds_before=60)
    assert agent.token().status_code == 200 and cached(app, made) is not None
    clock.advance(60)
    assert cached(app, made) is None
    assert agent.token().get_json()["error"] == "unauthorized_client"
    assert fresh_reads == [made.client_id] * 2


@pytest.mark.parametrize("settings", [{"REVIEW_GRACE_DAYS": 0}])
def test_the_grace_period_is_the_setting(new_agent, app):
    agent = new_agent(auth_method="client_secret_basic")
    clock.advance(REVIEW * DAY - 1)
    assert agent.token().status_code == 200
    clock.advance(1)
    assert "0-day grace period" in agent.token().get_json()["error_description"]


def test_its_tokens_stop_being_active_at_introspection_and_exchange(new_agent, app):
    agent = new_agent()
    to_grace_end(seconds_before=60)
    token = agent.token().get_json()["access_token"]
    service = relying_service(new_agent, API)  # approved now: its own review is a month away
    assert service.introspect(token).get_json()["active"] is True
    clock.advance(60)  # the token (300 s) has not expired; the client's grace has ended
    assert service.introspect(token).get_json() == {"active": False}
    jti = db.session.scalars(db.select(IssuedToken.jti).filter_by(client_id=agent.made.client_id)).one()
    assert tokens.inactive_reason(tokens.lookup(jti)) == "review overdue"  # what exchange checks
    exchange = agent.exchange(token, audience=API)
    assert exchange.status_code == 400 and exchange.get_json()["error"] == "unauthorized_client"


def test_a_renewal_lets_it_get_tokens_again_but_not_revive_the_old_ones(new_agent, app):
    agent = new_agent()
    to_grace_end(seconds_before=60)
    old = agent.token().get_json()["access_token"]
    clock.advance(60)
    service = relying_service(new_agent, API)
    approvals.renew(agent.made.client_id, proofing_method="video_call", evidence="CALL-9", assurance_level=1,
                    review_at=clock.now() + timedelta(days=30), actor=ACTOR)
    new = agent.token()
    assert new.status_code == 200
    assert service.introspect(new.get_json()["access_token"]).get_json()["active"] is True
    assert service.introspect(old).get_json() == {"active": False}


def test_the_sweep_suspends_it_and_the_refusal_then_says_suspended(new_agent, app):
    agent = new_agent(auth_method="client_secret_basic")
    to_grace_end()
    assert approvals.suspend_overdue_reviews() == 1
    assert "suspended" in agent.token().get_json()["error_description"]


def test_the_review_queue_says_when_the_grace_is_over(client, app):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    make_client(client_name="late agent")
    clock.advance((REVIEW + GRACE - 1) * DAY)
    assert "grace period over" not in client.get("/console/").get_data(as_text=True)
    clock.advance(DAY)
    page = client.get("/console/").get_data(as_text=True)
    assert "late agent" in page and "grace period over: no tokens until renewed" in page
