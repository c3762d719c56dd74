"""Which people may authorize which agents: the policy file's ``[[people]]`` rules and their
examples (``app.policy.rules``), applied by the authorization endpoint before the consent page and
again on the person's decision (test client, on SQLite and PostgreSQL), and ``ostiary user
set-groups``."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuthorizationCode, Consent, Person
from app.models.client import PENDING
from app.people import accounts
from app.policy import PersonFacts, PolicyError, parse
from app.policy.rules import SHIPPED

from .console_helpers import csrf_token, fresh_context_per_request
from .factories import count, events
from .test_authorization_code import (
    HIDDEN,
    authorize_params,
    code_for,
    person_agent,
    pkce,
    redeem,
    redirected,
    refresh,
)

PASSWORD = "a long enough password for people"
RULES = """
[[people]]
name = "agent-users"
description = "People of the agent-users group use any agent of team-agents."
clients = ["*"]
owners = ["team-agents"]
groups = ["agent-users"]

[[people]]
name = "carol-by-name"
clients = ["*"]
people = ["carol", "*@trusted.example"]

[[example]]
name = "a member of agent-users may"
client = "any-agent"
owner = "team-agents"
person = { username = "alice", groups = ["agent-users"] }
expect = "allow"

[[example]]
name = "but not for another team's agent"
client = "any-agent"
owner = "team-other"
person = { username = "alice", groups = ["agent-users"] }
expect = "deny"

[[example]]
name = "nor someone in no such group"
client = "any-agent"
owner = "team-agents"
person = { username = "bob", groups = ["sales"] }
expect = "deny"
"""


def person(username=None, email=None, groups=(), sub="sub-1") -> PersonFacts:
    return PersonFacts(sub=sub, username=username, email=email, groups=tuple(groups))


# ---- the rules, without a server ------------------------------------------------------------

def test_without_people_rules_any_signed_in_person_may_authorize():
    decision = parse(SHIPPED.read_text()).decide_person(client_id="c", owner="o", person=person("bob"))
    assert decision.allowed and decision.rule is None and "no [[people]] rules" in decision.reason


@pytest.mark.parametrize("who, owner, allowed, rule", [
    (person("alice", groups=["agent-users"]), "team-agents", True, "agent-users"),
    (person("alice", groups=["agent-users"]), "team-other", False, None),
    (person("bob", groups=["sales"]), "team-agents", False, None),
    (person("carol"), "team-other", True, "carol-by-name"),
    (person(None, email="dan@trusted.example", sub="provider-person"), "team-other", True, "carol-by-name"),
    (person(None, email="dan@untrusted.example"), "team-agents", False, None),
    (person(None, sub="carol"), "team-other", True, "carol-by-name"),  # a sub is a name too
])
def test_once_a_people_rule_exists_a_person_needs_a_matching_one(who, owner, allowed, rule):
    decision = parse(RULES).decide_person(client_id="any-agent", owner=owner, person=who)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    if not allowed:
        assert decision.error == "access_denied" and "deny by default" in decision.reason


def test_a_rule_bounds_the_agents_by_client_id():
    policy = parse('[[people]]\nname = "n"\nclients = ["reporter-*"]\ngroups = ["ops"]\n')
    assert policy.decide_person(client_id="reporter-1", owner="", person=person(groups=["ops"])).allowed
    assert not policy.decide_person(client_id="writer-1", owner="", person=person(groups=["ops"])).allowed


@pytest.mark.parametrize("text, words", [
    ('[[people]]\nname = "n"\ngroups = ["g"]\n', "people 1: missing clients"),
    ('[[people]]\nname = "n"\nclients = ["*"]\n', "name the groups or the people"),
    ('[[people]]\nname = "n"\nclients = ["*"]\ngroups = "ops"\n', "groups must be a list of strings"),
    ('[[people]]\nname = "n"\nclients = ["*"]\ngroups = ["g"]\nteams = ["x"]\n', "unknown key teams"),
    (('[[people]]\nname = "n"\nclients = ["*"]\ngroups = ["g"]\n[[workload]]\nname = "n"\nclients = ["*"]\n'
      'subjects = ["s"]\n'), "names must be unique"),
    ('[[example]]\nclient = "c"\nexpect = "allow"\n', "a task (for the [[rule]]s) or a person"),
    ('[[example]]\nclient = "c"\nexpect = "allow"\nperson = { username = "a" }\ntask = { intent = "x" }\n',
     "one of the two"),
    ('[[example]]\nclient = "c"\nexpect = "allow"\nperson = { nickname = "a" }\n', "person: unknown key nickname"),
    ('[[example]]\nclient = "c"\nexpect = "allow"\nperson = { groups = ["g"] }\n', "needs a sub, a username"),
    ('[[example]]\nclient = "c"\nexpect = "allow"\nperson = { username = 7 }\n', "username must be a string"),
])
def test_a_bad_people_rule_or_person_example_refuses_the_file(text, words):
    with pytest.raises(PolicyError) as refused:
        parse(text, "policy.toml")
    assert words in str(refused.value) and str(refused.value).startswith("policy.toml")


def test_a_person_example_that_comes_out_otherwise_refuses_the_file():
    text = RULES + '[[example]]\nname = "bob may"\nclient = "c"\nowner = "team-agents"\n' \
                   'person = { username = "bob", groups = ["sales"] }\nexpect = "allow"\n'
    with pytest.raises(PolicyError) as refused:
        parse(text, "policy.toml")
    assert "example 4 (bob may): expected allow, got deny" in str(refused.value)


# ---- at the authorization endpoint ----------------------------------------------------------

@pytest.fixture
def policy_file(tmp_path, settings):
    path = tmp_path / "policy.toml"
    path.write_text(SHIPPED.read_text() + RULES)
    settings["POLICY_FILE"] = str(path)
    return path


@pytest.fixture
def people(policy_file, app):
    """alice in agent-users, bob in sales (local accounts). (A test names ``policy_file`` before
    ``client``, so that the file is in the settings before the app is built.)"""
    fresh_context_per_request(app)
    accounts.create("alice", PASSWORD, "admin:test", groups=["agent-users"])
    accounts.create("bob", PASSWORD, "admin:test", email="bob@example.com", email_verified=True, groups=["sales"])


def sign_in(client, username: str) -> str:
    """Sign ``username`` in on ``client``; returns their sub."""
    page = client.get("/signin")
    response = client.post("/signin", data={"username": username, "password": PASSWORD,
                                            "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 303, response.get_data(as_text=True)
    return db.session.execute(select(Person.public_id).where(Person.username == username)).scalar_one()


def test_a_person_a_rule_matches_consents_and_gets_a_code(policy_file, client, people):
    made = person_agent()
    sign_in(client, "alice")
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    form = {**dict(HIDDEN.findall(html)), "decision": "allow", "csrf_token": csrf_token(html)}
    assert redirected(client.post("/authorize", data=form))["code"]
    assert count(AuthorizationCode, client_id=made.client_id) == 1
    assert not events("authorization.refused")


def test_a_person_no_rule_matches_is_shown_a_refusal_never_redirected_and_audited(policy_file, client, people):
    made = person_agent()
    bob = sign_in(client, "bob")  # his sub
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert response.status_code == 403 and "Location" not in response.headers
    html = response.get_data(as_text=True)
    assert "You may not authorize test agent to act for you" in html and "administrators can say why" in html
    assert "sales" not in html and "agent-users" not in html  # nothing of the rules or the person's groups
    [refused] = events("authorization.refused")
    assert refused.actor == f"person:{bob}" and refused.client_id == made.client_id
    assert refused.decision == "deny" and "deny by default" in refused.reason
    assert count(AuthorizationCode, client_id=made.client_id) == 0


def test_the_decision_posted_is_judged_again(policy_file, client, people):
    """Consent shown while alice was in agent-users; her groups change before she decides."""
    made = person_agent()
    sign_in(client, "alice")
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    accounts.set_groups("alice", ["sales"], "admin:test")
    form = {**dict(HIDDEN.findall(html)), "decision": "allow", "remember": "yes", "csrf_token": csrf_token(html)}
    response = client.post("/authorize", data=form)
    assert response.status_code == 403 and "Location" not in response.headers
    assert "You may not authorize" in response.get_data(as_text=True)
    assert count(AuthorizationCode, client_id=made.client_id) == 0 and count(Consent) == 0
    assert len(events("authorization.refused")) == 1


def test_a_remembered_consent_does_not_outlive_the_rule(policy_file, client, people):
    made = person_agent()
    sign_in(client, "alice")
    html = client.get("/authorize", query_string=authorize_params(made, pkce()[1])).get_data(as_text=True)
    form = {**dict(HIDDEN.findall(html)), "decision": "allow", "remember": "yes", "csrf_token": csrf_token(html)}
    assert redirected(client.post("/authorize", data=form))["code"]
    assert count(Consent) == 1
    accounts.set_groups("alice", [], "admin:test")
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert response.status_code == 403 and "You may not authorize" in response.get_data(as_text=True)
    assert count(AuthorizationCode, client_id=made.client_id) == 1  # only the first


def test_a_refresh_is_judged_again_when_the_rule_no_longer_allows_the_person(policy_file, client, people):
    """A refresh token outlives consent; the policy decides again at every refresh, so a person
    who left the group (or a rule that changed) ends the agent's access at its next refresh."""
    made = person_agent()
    sign_in(client, "alice")
    code, verifier = code_for(client, made)
    tokens = redeem(client, made, code, verifier).get_json()
    again = refresh(client, made, tokens["refresh_token"])
    assert again.status_code == 200, again.get_json()
    accounts.set_groups("alice", ["sales"], "admin:test")
    refused = refresh(client, made, again.get_json()["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert "the policy no longer lets the person" in refused.get_json()["error_description"]
    accounts.set_groups("alice", ["agent-users"], "admin:test")  # allowed again: the token still works
    assert refresh(client, made, again.get_json()["refresh_token"]).status_code == 200


def test_a_rule_may_name_people_by_their_verified_email(policy_file, client, people):
    made = person_agent()
    policy_file.write_text(SHIPPED.read_text() + RULES.replace('"*@trusted.example"', '"bob@example.com"'))
    sign_in(client, "bob")
    assert client.get("/authorize", query_string=authorize_params(made, pkce()[1])).status_code == 200


def test_an_unverified_email_is_not_a_name_the_rules_match(policy_file, client, people):
    made = person_agent()
    accounts.create("erin", PASSWORD, "admin:test", email="erin@trusted.example")  # not verified
    sign_in(client, "erin")
    assert client.get("/authorize", query_string=authorize_params(made, pkce()[1])).status_code == 403


def test_a_pending_agent_still_shows_the_waiting_page(policy_file, client, people):
    made = person_agent(PENDING)
    sign_in(client, "bob")
    response = client.get("/authorize", query_string=authorize_params(made, pkce()[1]))
    assert response.status_code == 200 and not events("authorization.refused")


def test_a_person_not_signed_in_is_asked_to_sign_in_first(policy_file, client, people):
    response = client.get("/authorize", query_string=authorize_params(person_agent(), pkce()[1]))
    assert response.status_code == 303 and response.headers["Location"].startswith("/signin")
    assert not events("authorization.refused")


def test_without_people_rules_everyone_consents_as_before(app, client):
    fresh_context_per_request(app)
    accounts.create("bob", PASSWORD, "admin:test", groups=["sales"])
    made = person_agent()
    sign_in(client, "bob")
    assert client.get("/authorize", query_string=authorize_params(made, pkce()[1])).status_code == 200


# ---- ostiary user set-groups ----------------------------------------------------------------

def test_set_groups_replaces_a_local_persons_groups_and_audits_it(runner, app):
    accounts.create("alice", PASSWORD, "admin:test", groups=["a"])
    ran = runner.invoke(args=["user", "set-groups", "alice", "ops", "agent-users", "ops"])
    assert ran.exit_code == 0, ran.output
    assert ran.output.strip() == "alice is in agent-users, ops"
    [changed] = events("person.groups_changed")
    assert changed.data["before"] == ["a"] and changed.data["groups"] == ["agent-users", "ops"]
    cleared = runner.invoke(args=["user", "set-groups", "alice"])
    assert cleared.exit_code == 0 and cleared.output.strip() == "alice is in no group"


@pytest.mark.parametrize("args, words", [
    (["nobody", "ops"], "no user 'nobody'"),
    (["alice", "a"], "already has exactly these groups"),
    (["alice", "has space"], "each 1-64 letters"),
])
def test_set_groups_refuses_what_does_not_apply(runner, app, args, words):
    accounts.create("alice", PASSWORD, "admin:test", groups=["a"])
    ran = runner.invoke(args=["user", "set-groups", *args])
    assert ran.exit_code == 1 and words in ran.output
    assert not events("person.groups_changed")


def test_set_groups_refuses_a_person_from_the_provider(runner, app):
    from app.people import oidc
    oidc.sign_in("https://id.example.com", oidc.Admitted("s-1", "pat@example.com", None, ["ops"]))
    sub = db.session.execute(select(Person.public_id).where(Person.subject == "s-1")).scalar_one()
    ran = runner.invoke(args=["user", "set-groups", sub, "admins"])
    assert ran.exit_code == 1 and "tells their groups at each sign-in" in ran.output
    assert db.session.execute(select(Person.groups).where(Person.subject == "s-1")).scalar_one() == ["ops"]
