"""RFC 7009 revocation (with everything exchanged from a token) and ending tasks."""
import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import IssuedToken, Task
from app.oauth import tokens

from .factories import events
from .token_actions import BOTH_GRANTS, task


@pytest.fixture
def agent(new_agent):
    """The agent under test: its client may exchange its tokens for task tokens."""
    return new_agent(grant_types=BOTH_GRANTS)


@pytest.fixture
def service(new_agent):
    return new_agent(auth_method="client_secret_basic", serves=("https://api.example.com",))


def issue(agent):
    return agent.token().get_json()["access_token"]


def task_token(agent, subject=None, **fields):
    response = agent.exchange(subject or issue(agent), authorization_details=task(**fields))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def active(service, token):
    return service.introspect(token).get_json()["active"]


def test_revoke_own_token(agent, service):
    token = issue(agent)
    response = agent.revoke(token)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert not active(service, token)
    [event] = events("token.revoked")
    assert event.actor == f"client:{agent.made.client_id}"


def test_revoking_a_token_revokes_what_was_exchanged_from_it(agent, service):
    parent = issue(agent)
    child = task_token(agent, parent)["access_token"]
    grandchild = task_token(agent, child)["access_token"]
    sibling = issue(agent)
    agent.revoke(parent)
    assert not active(service, child) and not active(service, grandchild)
    assert active(service, sibling)


def test_revoking_a_child_leaves_the_parent(agent, service):
    parent = issue(agent)
    agent.revoke(task_token(agent, parent)["access_token"])
    assert active(service, parent)


@pytest.mark.parametrize("token", ["unknown", "a.b.c", ""])
def test_unknown_tokens_answer_200(agent, token):
    response = agent.revoke(token)
    assert response.status_code == 200


def test_another_clients_token_is_refused_and_stays_active(new_agent, agent, service):
    other = new_agent()
    token = issue(agent)
    response = other.revoke(token)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert "another client" in response.get_json()["error_description"]
    assert active(service, token)


def test_revocation_needs_client_authentication(client, agent):
    response = client.post("/revoke", data={"token": issue(agent)})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_revoking_twice_is_fine(agent):
    token = issue(agent)
    assert agent.revoke(token).status_code == 200
    assert agent.revoke(token).status_code == 200
    assert tokens.revoke(db.session.execute(select(IssuedToken.jti)).scalar_one(), actor="system") == []


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_the_agent_ends_its_task(agent, service, outcome):
    held = issue(agent)
    first = task_token(agent, held)
    second = task_token(agent, first["access_token"])  # same task, re-exchanged
    response = agent.end_task(first["task_id"], outcome)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"task_id": first["task_id"], "outcome": outcome, "revoked": 2}
    assert not active(service, first["access_token"]) and not active(service, second["access_token"])
    assert active(service, held)  # the agent's own token is not the task's
    row = db.session.get(Task, first["task_id"])
    assert row.outcome == outcome and row.ended_at is not None
    [event] = events("task.ended")
    assert event.task_id == first["task_id"] and json.loads(json.dumps(event.data))["revoked"]


@pytest.mark.parametrize("task_id, outcome, words", [
    ("no-such-task", "done", "no task"),
    (None, "finished", "outcome"),
])
def test_ending_refusals(agent, task_id, outcome, words):
    real = task_token(agent)["task_id"]
    response = agent.end_task(task_id or real, outcome)
    assert response.get_json()["error"] == "invalid_request" and words in response.get_json()["error_description"]


def test_an_agent_cannot_end_another_agents_task(new_agent, agent, service):
    made = task_token(agent)
    other = new_agent()
    assert other.end_task(made["task_id"]).get_json()["error"] == "invalid_request"
    assert active(service, made["access_token"])


def test_ending_twice_says_so(agent):
    task_id = task_token(agent)["task_id"]
    assert agent.end_task(task_id).status_code == 200
    assert "already ended" in agent.end_task(task_id).get_json()["error_description"]


def test_task_ids_are_hex_so_a_command_line_takes_them_for_arguments(agent):
    """One urlsafe id in 64 began with "-": `ostiary task end -u…` answered "No such option"."""
    task_id = task_token(agent)["task_id"]
    assert len(task_id) == 32 and set(task_id) <= set("0123456789abcdef")


def test_cli_task_end(runner, agent, service):
    made = task_token(agent)
    result = runner.invoke(args=["task", "end", made["task_id"]])
    assert result.exit_code == 0 and "1 token(s) revoked" in result.output, result.output
    assert not active(service, made["access_token"])
    [event] = events("task.ended")
    assert event.actor.startswith("cli:") and event.reason == "ended"
    again = runner.invoke(args=["task", "end", made["task_id"]])
    assert again.exit_code == 1 and "already ended" in again.output


def test_cli_workload_issuers(runner, tmp_path):
    from .factories import new_key, public_jwks
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(public_jwks(new_key("spire"))))
    added = runner.invoke(args=["workload-issuer", "add", "https://spire.example.org", "--audience", "ostiary",
                                "--jwks-file", str(jwks), "--subject-pattern", "spiffe://example.org/*"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(args=["workload-issuer", "list", "--json"])
    [item] = json.loads(listed.output)
    assert item["issuer"] == "https://spire.example.org" and item["subject_pattern"] == "spiffe://example.org/*"
    twice = runner.invoke(args=["workload-issuer", "add", "https://spire.example.org", "--audience", "x",
                                "--jwks-file", str(jwks)])
    assert twice.exit_code == 1 and "already" in twice.output
    removed = runner.invoke(args=["workload-issuer", "remove", "https://spire.example.org"])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(args=["workload-issuer", "list", "--json"]).output) == []
