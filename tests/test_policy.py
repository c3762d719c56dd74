"""The intent policy: deny by default, every constraint, delegation, self-checking examples."""
import pytest

from app import StartupError, create_app
from app.policy import PolicyError, agent_task, load, parse, within_approval
from app.policy.rules import SHIPPED

from .servers import TEST_SECRETS

RULE = """
[[rule]]
name = "reports"
intents = ["summarize-*"]
clients = ["agent-*"]
owners = ["team-ops"]
scopes = ["read"]
actions = ["read"]
locations = ["https://api.example.com/reports*"]
datatypes = ["report"]
max_sensitivity = "internal"
max_ttl = 120
delegates = ["worker-*"]

[[delegation]]
name = "orchestrator"
actors = ["orchestrator"]
subjects = ["agent-*"]
intents = ["summarize-*"]
"""


def decide(policy, client="agent-1", owner="team-ops", scopes=("read",), **fields):
    """The decision on a task within RULE unless ``fields`` change it (None: leave the field out)."""
    item = {"type": "agent_task", "intent": "summarize-week", "actions": ["read"],
            "locations": ["https://api.example.com/reports/1"], "datatypes": ["report"], **fields}
    item = {k: v for k, v in item.items() if v is not None}
    return policy.decide_task(client_id=client, owner=owner, task=agent_task.normalise(item), scopes=list(scopes))


def test_shipped_policy_loads_and_its_examples_pass():
    policy = load(str(SHIPPED))
    assert policy.rules and len(policy.examples) >= 4


def test_allowed_within_the_rule():
    decision = decide(parse(RULE), locations=["https://api.example.com/reports/1"], datatypes=["report"],
                      sensitivity="internal", delegate="worker-7")
    assert decision.allowed and decision.rule == "reports" and decision.max_ttl == 120
    assert decision.may_act == "worker-7" and decision.actor == "policy:reports"


@pytest.mark.parametrize("change, error, words", [
    ({"intent": "delete-all"}, "invalid_authorization_details", "deny by default"),
    ({"client": "stranger"}, "invalid_authorization_details", "deny by default"),
    ({"owner": "team-other"}, "invalid_authorization_details", "deny by default"),
    ({"scopes": ("read", "write")}, "invalid_scope", "scope write"),
    ({"actions": ["read", "delete"]}, "invalid_authorization_details", "actions delete"),
    ({"locations": ["https://api.example.com/payroll"]}, "invalid_authorization_details", "locations"),
    ({"datatypes": ["salary"]}, "invalid_authorization_details", "datatypes salary"),
    ({"sensitivity": "restricted"}, "invalid_authorization_details", "sensitivity restricted"),
    ({"delegate": "orchestrator"}, "invalid_authorization_details", "delegate"),
    ({"locations": None}, "invalid_authorization_details", "must name its locations"),
    ({"datatypes": None}, "invalid_authorization_details", "must name its datatypes"),
    ({"locations": None, "datatypes": None}, "invalid_authorization_details", "must name its"),
])
def test_denials(change, error, words):
    decision = decide(parse(RULE), **change)
    assert not decision.allowed and decision.error == error and words in decision.reason


def test_empty_policy_denies_everything():
    assert not decide(parse("")).allowed


def test_first_matching_rule_decides():
    policy = parse(RULE + '\n[[rule]]\nname = "wide"\nintents = ["*"]\nclients = ["*"]\nscopes = ["*"]\n'
                          'actions = ["*"]\nmax_ttl = 60\n')
    assert decide(policy, actions=["delete"]).rule == "reports"  # not rescued by the later rule
    assert decide(policy, intent="anything-else", actions=["delete"]).rule == "wide"


def test_workload_bindings_deny_by_default():
    policy = parse(RULE + '\n[[workload]]\nname = "pods"\nclients = ["agent-1"]\n'
                          'issuers = ["https://spire.example.org"]\nsubjects = ["spiffe://example.org/*"]\n')
    bound = dict(client_id="agent-1", issuer="https://spire.example.org", subject="spiffe://example.org/a")
    assert policy.workload(**bound).name == "pods"
    assert policy.workload(**{**bound, "client_id": "agent-2"}) is None
    assert policy.workload(**{**bound, "issuer": "https://other.example"}) is None
    assert policy.workload(**{**bound, "subject": "spiffe://elsewhere.org/a"}) is None
    assert parse(RULE).workload(**bound) is None


def test_delegation_rules():
    policy = parse(RULE)
    assert policy.delegation(actor="orchestrator", subject="agent-3", intent="summarize-x").name == "orchestrator"
    assert policy.delegation(actor="orchestrator", subject="other", intent="summarize-x") is None
    assert policy.delegation(actor="someone", subject="agent-3", intent="summarize-x") is None


@pytest.mark.parametrize("text, words", [
    ("[[rule]]\nname = 1 2", "test.toml: .*line 2"),
    ("[rules]\n", "unknown section"),
    ('[[rule]]\nname = "x"\n', "missing"),
    (RULE.replace('max_ttl = 120', 'max_ttl = 120\nmax_tll = 5'), "unknown key max_tll"),
    (RULE.replace('max_sensitivity = "internal"', 'max_sensitivity = "secret"'), "max_sensitivity"),
    (RULE.replace('max_ttl = 120', 'max_ttl = "long"'), "max_ttl"),
    (RULE.replace('actions = ["read"]', 'actions = "read"'), "actions must be a list"),
    (RULE + '\n[[rule]]\nname = "reports"\nintents = ["x"]\nclients = ["*"]\nscopes = []\nactions = []\n'
            'max_ttl = 1\n', "unique"),
    (RULE + '\n[[example]]\nclient = "agent-1"\nowner = "team-ops"\ntask = { intent = "summarize-x", '
            'actions = ["delete"] }\nscopes = ["read"]\nexpect = "allow"\n', "expected allow, got deny"),
    (RULE + '\n[[example]]\nclient = "agent-1"\ntask = { intent = "x" }\nexpect = "deny"\n', "actions"),
])
def test_bad_policy_files_are_refused_whole(text, words):
    with pytest.raises(PolicyError, match=words):
        parse(text, "test.toml")


def test_a_broken_edit_keeps_the_last_good_policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(RULE)
    assert load(str(path)).rules[0].name == "reports"
    path.write_text("[[rule]]\nbroken")
    import os
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the filesystem's resolution
    assert load(str(path)).rules[0].name == "reports"


def test_start_up_fails_on_a_bad_policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[[rule]]\nname = "x"\n')
    with pytest.raises(StartupError, match="intent policy"):
        create_app({"INSTANCE_PATH": str(tmp_path), "POLICY_FILE": str(path), **TEST_SECRETS}, check=False)
    with pytest.raises(StartupError, match="cannot read the policy file"):
        create_app({"INSTANCE_PATH": str(tmp_path), "POLICY_FILE": str(tmp_path / "nope.toml"), **TEST_SECRETS},
                   check=False)


@pytest.mark.parametrize("scopes, audiences, error", [
    (["write"], None, "invalid_scope"),
    (None, ["https://evil.example"], "invalid_target"),
])
def test_within_approval_refusals(scopes, audiences, error):
    decision = within_approval(approved_scopes=["read"], approved_audiences=["https://api.example.com"],
                               scopes=scopes, audiences=audiences)
    assert not decision.allowed and decision.error == error


def test_within_approval_defaults_to_the_approval():
    decision = within_approval(approved_scopes=["read", "list"], approved_audiences=["https://a"],
                               scopes=None, audiences=None)
    assert decision.granted == {"scopes": ["read", "list"], "audiences": ["https://a"]}


@pytest.mark.parametrize("raw, words", [
    ("[]", "non-empty"),
    ('{"type": "agent_task"}', "array"),
    ('[{"type": "agent_task", "intent": "x", "actions": ["a"]}, {"type": "agent_task", "intent": "y", '
     '"actions": ["b"]}]', "one agent_task"),
    ('[{"type": "agent_task", "actions": ["a"]}]', "intent"),
    ('[{"type": "agent_task", "intent": "x"}]', "actions"),
    ('[{"type": "agent_task", "intent": "x", "actions": [1]}]', "actions"),
    ('[{"type": "agent_task", "intent": "x", "actions": ["a"], "sensitivity": "top"}]', "sensitivity"),
    ('[{"intent": "x"}]', "type"),
])
def test_agent_task_parsing(raw, words):
    with pytest.raises(agent_task.AuthorizationDetailsError, match=words):
        agent_task.parse(raw)
