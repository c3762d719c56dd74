"""RFC 8693 token exchange for one task (RFC 9396 agent_task): only narrower, policy-checked."""
import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import IssuedToken, Task
from app.registration import lifecycle
from app.support import clock

from .factories import events
from .token_actions import ACCESS_TOKEN, BOTH_GRANTS, task

API = "https://api.example.com"
REPORTS = "https://api.example.com/reports/2026"
POLICY = """
[[rule]]
name = "read-reports"
intents = ["summarize-reports"]
clients = ["*"]
scopes = ["read", "list"]
actions = ["read", "list"]
locations = ["https://api.example.com/reports*"]
datatypes = ["report"]
max_sensitivity = "internal"
max_ttl = 120
delegates = ["*"]
"""


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return {"POLICY_FILE": str(path)}


def add_to_policy(app, text):
    with open(app.config["POLICY_FILE"], "a") as out:
        out.write(text)


def held_token(agent, **params):
    response = agent.token(**params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def claims_of(token):
    import jwt as pyjwt
    return pyjwt.decode(token, options={"verify_signature": False})


def exchanged(agent, subject, **params):
    params.setdefault("authorization_details", task(locations=[REPORTS]))
    return agent.exchange(subject, **params)


def test_exchange_for_a_task_token(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS, scopes=("read", "list"))
    subject = held_token(agent)
    response = exchanged(agent, subject, scope="read", resource=API)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["issued_token_type"] == ACCESS_TOKEN and body["token_type"] == "Bearer"
    assert body["expires_in"] == 120  # the rule's max_ttl, below the default and the approval
    claims = claims_of(body["access_token"])
    assert claims["scope"] == "read" and claims["aud"] == API and "act" not in claims
    assert claims["task_id"] == body["task_id"]
    assert claims["authorization_details"] == body["authorization_details"] == [{
        "type": "agent_task", "intent": "summarize-reports", "actions": ["read"], "locations": [REPORTS],
        "datatypes": ["report"], "sensitivity": "public"}]
    row = db.session.get(IssuedToken, claims["jti"])
    assert row.parent_jti == claims_of(subject)["jti"] and row.task_id == body["task_id"]
    assert db.session.get(Task, body["task_id"]).intent == "summarize-reports"
    kinds = [(e.event_type, e.actor, e.decision) for e in events(task_id=body["task_id"])]
    assert kinds == [("policy.decision", "policy:read-reports", "allow"),
                     ("token.exchanged", f"client:{agent.made.client_id}", "allow")]


@pytest.mark.parametrize("params, error, words", [
    ({"scope": "write"}, "invalid_scope", "not in the subject_token"),
    ({"resource": "https://other.example"}, "invalid_target", "not an audience of the subject_token"),
    ({"resource": [API, "https://api2.example.com"]}, "invalid_target", "one audience"),
    ({"authorization_details": json.dumps([{"type": "payment_initiation"}])},
     "invalid_authorization_details", "payment_initiation"),
    ({"authorization_details": "{not json"}, "invalid_authorization_details", "not valid JSON"),
    ({"authorization_details": task(extra="x")}, "invalid_authorization_details", "unknown fields"),
    ({"authorization_details": task() + "x"}, "invalid_authorization_details", "JSON"),
    ({"authorization_details": ""}, "invalid_request", "agent_task is required"),
    ({"authorization_details": task(intent="delete-everything")}, "invalid_authorization_details",
     "deny by default"),
    ({"authorization_details": task(actions=["read", "write"])}, "invalid_authorization_details",
     "actions write"),
    ({"authorization_details": task(sensitivity="confidential")}, "invalid_authorization_details",
     "sensitivity"),
    ({"authorization_details": task(locations=["https://api.example.com/payroll"])},
     "invalid_authorization_details", "locations"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request",
     "urn:ietf:params:oauth:token-type:id_token"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request", "saml2"),
    ({"actor_token": "x.y.z"}, "invalid_request", "actor_token_type"),
    ({"actor_token_type": ACCESS_TOKEN}, "invalid_request", "actor_token"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request",
     "refresh_token"),
])
def test_refusals(new_agent, params, error, words):
    agent = new_agent(grant_types=BOTH_GRANTS)
    subject = held_token(agent)
    params = dict(params)  # the parametrize dict is shared by both backends
    subject_type = params.pop("subject_token_type", ACCESS_TOKEN)
    response = exchanged(agent, subject, subject_type=subject_type, **params)
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == error, body
    assert words in body["error_description"]
    [refused] = events("token.refused")
    assert refused.reason == body["error_description"] and refused.decision == "deny"
    assert db.session.execute(select(Task)).first() is None


def test_policy_denial_is_its_own_audit_event(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS)
    response = exchanged(agent, held_token(agent), authorization_details=task(intent="wipe-disk"))
    assert response.get_json()["error"] == "invalid_authorization_details"
    [decision] = events("policy.decision")
    assert decision.actor == "policy:default-deny" and decision.decision == "deny"
    assert "deny by default" in decision.reason


@pytest.mark.parametrize("subject", ["garbage", "a.b.c", ""])
def test_bad_subject_tokens(new_agent, subject):
    agent = new_agent(grant_types=BOTH_GRANTS)
    response = exchanged(agent, subject)
    assert response.get_json()["error"] == ("invalid_request" if subject == "" else "invalid_grant")


def test_revoked_parent_is_invalid_grant(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS)
    subject = held_token(agent)
    assert agent.revoke(subject).status_code == 200
    response = exchanged(agent, subject)
    assert response.get_json()["error"] == "invalid_grant" and "revoked" in response.get_json()["error_description"]


def test_expired_subject_is_invalid_grant(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS)
    subject = held_token(agent)
    clock.advance(301)
    assert exchanged(agent, subject).get_json()["error"] == "invalid_grant"


def test_lifetime_within_the_subject_tokens_remaining_life(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS)
    subject = held_token(agent)
    clock.advance(250)
    body = exchanged(agent, subject).get_json()
    assert claims_of(body["access_token"])["exp"] <= claims_of(subject)["exp"]
    assert body["expires_in"] in (49, 50)  # 50, or 49 if a second ticked between the two requests


def test_subject_of_a_suspended_client_is_invalid_grant(new_agent):
    holder, caller = (new_agent(grant_types=BOTH_GRANTS) for _ in range(2))
    subject = held_token(holder)
    lifecycle.suspend(holder.made.client_id, reason="incident", actor="admin:test")
    response = exchanged(caller, subject)
    assert response.get_json()["error"] == "invalid_grant"


def test_another_clients_token_is_refused(new_agent):
    """Keycloak CVE-2022-1245: a client must not exchange a token issued to someone else."""
    victim, attacker = (new_agent(grant_types=BOTH_GRANTS) for _ in range(2))
    response = exchanged(attacker, held_token(victim))
    body = response.get_json()
    assert body["error"] == "invalid_grant" and "issued to another client" in body["error_description"]


def test_may_act_lets_the_named_delegate_exchange(new_agent):
    orchestrator, worker, stranger = (new_agent(grant_types=BOTH_GRANTS) for _ in range(3))
    body = exchanged(orchestrator, held_token(orchestrator),
                     authorization_details=task(locations=[REPORTS], delegate=worker.made.client_id)).get_json()
    task_token = body["access_token"]
    assert claims_of(task_token)["may_act"] == {"client_id": worker.made.client_id, "sub": worker.made.client_id}
    assert exchanged(stranger, task_token, authorization_details="").get_json()["error"] == "invalid_grant"
    response = exchanged(worker, task_token, authorization_details="")
    assert response.status_code == 200, response.get_json()
    claims = claims_of(response.get_json()["access_token"])
    assert claims["act"] == {"sub": worker.made.client_id, "client_id": worker.made.client_id}
    assert claims["sub"] == orchestrator.made.client_id and claims["client_id"] == worker.made.client_id
    assert claims["task_id"] == body["task_id"] and "may_act" not in claims  # one hop only


def test_a_delegate_the_policy_does_not_allow(new_agent, app):
    add_to_policy(app, '\n[[rule]]\nname = "no-delegates"\nintents = ["audit-*"]\nclients = ["*"]\n'
                       'scopes = ["read"]\nactions = ["read"]\nmax_ttl = 60\n')
    agent = new_agent(grant_types=BOTH_GRANTS)
    response = exchanged(agent, held_token(agent),
                         authorization_details=task(intent="audit-logs", delegate="someone"))
    assert "delegate" in response.get_json()["error_description"]


def test_policy_delegation_rule_and_nested_act(new_agent, app):
    first, second, third = (new_agent(grant_types=BOTH_GRANTS) for _ in range(3))
    add_to_policy(app, f'''
[[delegation]]
name = "second-for-first"
actors = ["{second.made.client_id}"]
subjects = ["{first.made.client_id}"]

[[delegation]]
name = "third-for-second"
actors = ["{third.made.client_id}"]
subjects = ["{second.made.client_id}"]
''')
    one = exchanged(first, held_token(first)).get_json()["access_token"]
    two = exchanged(second, one, authorization_details="").get_json()["access_token"]
    assert claims_of(two)["act"] == {"sub": second.made.client_id, "client_id": second.made.client_id}
    response = exchanged(third, two, authorization_details="")
    assert response.status_code == 200, response.get_json()
    assert claims_of(response.get_json()["access_token"])["act"] == {
        "sub": third.made.client_id, "client_id": third.made.client_id,
        "act": {"sub": second.made.client_id, "client_id": second.made.client_id}}
    denied = exchanged(third, one, authorization_details="")  # no rule lets third act for first
    assert denied.get_json()["error"] == "invalid_grant"


def test_a_delegation_chain_stops_at_its_limit(new_agent, app):
    """Each hop nests one more act (RFC 8693 §4.1); past the limit the exchange is refused with
    invalid_grant, rather than minting a token too deeply nested to be read back."""
    from app.oauth.grants.token_exchange import MAX_DELEGATION_HOPS
    agents = [new_agent(grant_types=BOTH_GRANTS) for _ in range(MAX_DELEGATION_HOPS + 2)]
    add_to_policy(app, '\n[[delegation]]\nname = "chain"\nactors = ["*"]\nsubjects = ["*"]\n')
    token = exchanged(agents[0], held_token(agents[0])).get_json()["access_token"]
    for hop, agent in enumerate(agents[1:], 1):
        response = exchanged(agent, token, authorization_details="")
        if hop <= MAX_DELEGATION_HOPS:
            assert response.status_code == 200, (hop, response.get_json())
            token = response.get_json()["access_token"]
        else:
            body = response.get_json()
            assert response.status_code == 400 and body["error"] == "invalid_grant"
            assert "delegation chain" in body["error_description"]
    assert agents[MAX_DELEGATION_HOPS].introspect(token).get_json()["active"] is True  # it still reads back


def test_actor_token_needs_may_act_or_policy(new_agent, app):
    agent = new_agent(grant_types=BOTH_GRANTS)
    subject, actor = held_token(agent), held_token(agent)
    response = exchanged(agent, subject, actor_token=actor, actor_token_type=ACCESS_TOKEN)
    assert response.get_json()["error"] == "invalid_grant" and "delegation" in \
        response.get_json()["error_description"]
    add_to_policy(app, f'\n[[delegation]]\nname = "self"\nactors = ["{agent.made.client_id}"]\n'
                       f'subjects = ["{agent.made.client_id}"]\n')
    response = exchanged(agent, subject, actor_token=actor, actor_token_type=ACCESS_TOKEN)
    assert response.status_code == 200
    assert claims_of(response.get_json()["access_token"])["act"]["sub"] == agent.made.client_id


def test_someone_elses_actor_token_is_refused(new_agent):
    agent, other = (new_agent(grant_types=BOTH_GRANTS) for _ in range(2))
    response = exchanged(agent, held_token(agent), actor_token=held_token(other), actor_token_type=ACCESS_TOKEN)
    assert response.get_json()["error"] == "invalid_grant"


def test_re_exchange_narrows_the_task(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS)
    wide = exchanged(agent, held_token(agent), authorization_details=task(
        actions=["read", "list"], locations=[REPORTS], datatypes=["report"])).get_json()
    narrow = exchanged(agent, wide["access_token"], authorization_details=task(
        actions=["list"], locations=[REPORTS], datatypes=["report"]))
    assert narrow.status_code == 200 and narrow.get_json()["task_id"] == wide["task_id"]


@pytest.mark.parametrize("widened", [
    task(actions=["read", "list", "write"], locations=[REPORTS]),
    task(intent="read-reports", actions=["read"]),
    task(actions=["read"], locations=[REPORTS, "https://api.example.com/reports/2027"]),
    task(actions=["read"], locations=[REPORTS], sensitivity="internal"),
], ids=["another action", "another intent", "another location", "a higher sensitivity"])
def test_a_re_exchange_cannot_widen_the_task(new_agent, widened):
    agent = new_agent(grant_types=BOTH_GRANTS)
    wide = exchanged(agent, held_token(agent), authorization_details=task(
        actions=["read", "list"], locations=[REPORTS], datatypes=["report"])).get_json()
    response = exchanged(agent, wide["access_token"], authorization_details=widened)
    assert response.get_json()["error"] == "invalid_authorization_details", widened


FULL_TASK = {"type": "agent_task", "intent": "summarize-reports", "description": "weekly summary",
             "actions": ["list", "read"], "locations": [REPORTS], "datatypes": ["report"],
             "sensitivity": "internal"}


@pytest.mark.parametrize("left_out", ["intent", "description", "actions", "locations", "datatypes",
                                      "sensitivity"])
def test_a_field_the_re_exchange_leaves_out_is_inherited_never_unbounded(new_agent, left_out):
    """RFC 9396 details of a task token: each field of agent_task the request omits is the
    subject token's, so a re-exchange cannot shed a bound by not mentioning it."""
    agent = new_agent(grant_types=BOTH_GRANTS)
    wide = exchanged(agent, held_token(agent), authorization_details=json.dumps([FULL_TASK]))
    assert wide.status_code == 200, wide.get_json()
    asked = {k: v for k, v in FULL_TASK.items() if k != left_out}
    again = exchanged(agent, wide.get_json()["access_token"], authorization_details=json.dumps([asked]))
    assert again.status_code == 200, again.get_json()
    assert claims_of(again.get_json()["access_token"])["authorization_details"] == [FULL_TASK]


def test_a_delegate_is_not_inherited(new_agent):
    agent, worker = (new_agent(grant_types=BOTH_GRANTS) for _ in range(2))
    delegating = exchanged(agent, held_token(agent), authorization_details=json.dumps(
        [{**FULL_TASK, "delegate": worker.made.client_id}])).get_json()
    again = exchanged(agent, delegating["access_token"], authorization_details=json.dumps([{"type": "agent_task"}]))
    assert again.status_code == 200, again.get_json()
    details = claims_of(again.get_json()["access_token"])["authorization_details"]
    assert details == [FULL_TASK] and "may_act" not in claims_of(again.get_json()["access_token"])


@pytest.mark.parametrize("narrowed, field, value", [
    ({"actions": ["read"]}, "actions", ["read"]),
    ({"sensitivity": "public"}, "sensitivity", "public"),
    ({"locations": [REPORTS]}, "locations", [REPORTS]),
])
def test_a_field_the_re_exchange_names_narrows_only_that_field(new_agent, narrowed, field, value):
    agent = new_agent(grant_types=BOTH_GRANTS)
    wide = exchanged(agent, held_token(agent), authorization_details=json.dumps([FULL_TASK])).get_json()
    again = exchanged(agent, wide["access_token"], authorization_details=json.dumps([{"type": "agent_task",
                                                                                       **narrowed}]))
    details = claims_of(again.get_json()["access_token"])["authorization_details"][0]
    assert details == {**FULL_TASK, field: value}


@pytest.mark.parametrize("left_out", ["locations", "datatypes"])
def test_a_first_exchange_must_name_what_the_rule_bounds(new_agent, left_out):
    """A rule that bounds locations (or datatypes) is not passed by leaving them out."""
    agent = new_agent(grant_types=BOTH_GRANTS)
    response = exchanged(agent, held_token(agent), authorization_details=task(**{left_out: None}))
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "invalid_authorization_details"
    assert f"must name its {left_out}" in body["error_description"]


def test_a_rule_without_a_bound_on_a_field_leaves_it_unnamed(new_agent, app):
    add_to_policy(app, '\n[[rule]]\nname = "open-notes"\nintents = ["take-notes"]\nclients = ["*"]\n'
                       'scopes = ["read"]\nactions = ["read"]\nmax_ttl = 60\n')
    agent = new_agent(grant_types=BOTH_GRANTS)
    response = exchanged(agent, held_token(agent), authorization_details=task(
        intent="take-notes", locations=None, datatypes=None))
    assert response.status_code == 200, response.get_json()
    named = task(intent="take-notes", datatypes=None)  # the rule allows no location at all
    assert exchanged(agent, held_token(agent), authorization_details=named).get_json()["error"] == \
        "invalid_authorization_details"


def test_exchange_without_registering_for_it(new_agent):
    agent = new_agent()  # client_credentials only
    response = exchanged(agent, held_token(agent))
    assert response.get_json()["error"] == "unauthorized_client"


def test_scope_not_approved_for_the_caller(new_agent, app):
    holder = new_agent(grant_types=BOTH_GRANTS, scopes=("read", "list"))
    add_to_policy(app, f'\n[[delegation]]\nname = "d"\nactors = ["*"]\nsubjects = ["{holder.made.client_id}"]\n')
    caller = new_agent(grant_types=BOTH_GRANTS, scopes=("read",))
    response = exchanged(caller, held_token(holder), scope="list")
    assert response.get_json()["error"] == "invalid_scope" and "approval" in \
        response.get_json()["error_description"]
