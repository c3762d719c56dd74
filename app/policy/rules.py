"""The intent policy file (``config/policy.toml`` or ``POLICY_FILE``): rules an administrator
reads, edits and tests. Deny by default: no matching rule, no token; and, once the file has any
``[[people]]`` rule, no matching rule, no authorization by that person.

Format (TOML)::

    [[rule]]                      # one per kind of task; the first that matches decides
    name = "summarize-reports"
    intents = ["summarize-reports"]   # agent_task.intent patterns (* ? wildcards)
    clients = ["*"]                   # client_id patterns (default: none -> rule never matches)
    owners = ["*"]                    # approval owner patterns (default ["*"])
    scopes = ["read"]                 # scopes a task token for it may carry
    actions = ["read", "list"]        # agent_task.actions allowed
    locations = ["https://api.example.com/reports*"]  # agent_task.locations allowed (patterns);
                                      #   a rule that lists locations requires the task to name them
    datatypes = ["report"]            # agent_task.datatypes allowed (required likewise, if listed)
    max_sensitivity = "internal"      # public < internal < confidential < restricted
    max_ttl = 300                     # seconds; the token lives at most this long
    delegates = []                    # client_id patterns the task token may name as delegate

    [[delegation]]                    # callers that may exchange tokens of other clients
    name = "orchestrator-for-workers"
    actors = ["client-b"]             # the calling client (or actor token subject) patterns
    subjects = ["client-a"]           # the subject token's client_id (or workload sub) patterns
    intents = ["*"]

    [[workload]]                      # which clients may present which workload identities
    name = "reporter-pods"
    clients = ["client-a"]            # the calling client_id patterns; a workload JWT presented as
                                      #   the grant (RFC 7523) without a client_id gets the one
                                      #   client the matching rules name without a wildcard
    issuers = ["https://spire.example.org"]          # workload issuer patterns (default ["*"])
    subjects = ["spiffe://example.org/ns/agents/*"]  # the workload JWT's sub patterns

    [[people]]                        # which people may authorize which agents to act for them
    name = "ops-use-ops-agents"       #   (none at all: any signed-in person, within the approval)
    clients = ["*"]                   # the agent's client_id patterns
    owners = ["team-ops"]             # its approval's owner patterns (default ["*"])
    groups = ["ops", "sre-*"]         # the person's group patterns (from the OpenID provider's
                                      #   groups claim, or `ostiary user create --group`)
    people = ["alice", "*@ops.example.com"]  # or their username, verified email or sub
                                      #   (a rule names groups, people or both; either matches)

    [[example]]                       # checked every time the file is loaded
    client = "client-a"
    owner = "team-ops"
    task = { intent = "summarize-reports", actions = ["read"] }
    scopes = ["read"]
    expect = "allow"                  # or "deny"

    [[example]]                       # a person example tests the [[people]] rules
    client = "client-a"
    owner = "team-ops"
    person = { username = "bob", email = "bob@example.com", groups = ["ops"] }
    expect = "allow"

A file that does not parse, has an unknown key, or whose examples do not come out as
expected is refused as a whole (``PolicyError``): the previous good policy keeps deciding in a
running server, and start-up fails with the reason.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from app.policy import agent_task
from app.support.echo import safe_echo

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "policy.toml"
RULE_KEYS = {"name", "description", "intents", "clients", "owners", "scopes", "actions", "locations",
             "datatypes", "max_sensitivity", "max_ttl", "delegates"}
DELEGATION_KEYS = {"name", "description", "actors", "subjects", "intents"}
WORKLOAD_KEYS = {"name", "description", "clients", "issuers", "subjects"}
PEOPLE_KEYS = {"name", "description", "clients", "owners", "groups", "people"}
EXAMPLE_KEYS = {"name", "client", "owner", "task", "scopes", "expect", "subject", "person"}
PERSON_KEYS = {"sub", "username", "email", "groups"}


class PolicyError(ValueError):
    """The policy file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Decision:
    """A policy decision with its reason, for the caller and for the audit trail."""

    allowed: bool
    reason: str
    rule: str | None = None             # the rule that decided; None: default deny
    error: str | None = None            # the OAuth error code to answer a denial with
    max_ttl: int | None = None
    granted: dict | None = None         # the agent_task as granted
    may_act: str | None = None          # a delegate the token may name

    @property
    def actor(self) -> str:
        return f"policy:{self.rule or 'default-deny'}"

    def as_audit(self) -> dict:
        return {"rule": self.rule, "granted": self.granted, "max_ttl": self.max_ttl}


@dataclass(frozen=True)
class Rule:
    name: str
    intents: tuple
    clients: tuple
    owners: tuple
    scopes: tuple
    actions: tuple
    locations: tuple
    datatypes: tuple
    max_sensitivity: str
    max_ttl: int
    delegates: tuple
    description: str = ""

    def applies(self, client_id: str, owner: str, intent: str) -> bool:
        return (_match(intent, self.intents) and _match(client_id, self.clients)
                and _match(owner or "", self.owners))


@dataclass(frozen=True)
class Delegation:
    name: str
    actors: tuple
    subjects: tuple
    intents: tuple = ("*",)


@dataclass(frozen=True)
class WorkloadBinding:
    name: str
    clients: tuple
    subjects: tuple
    issuers: tuple = ("*",)


@dataclass(frozen=True)
class PeopleRule:
    name: str
    clients: tuple
    owners: tuple = ("*",)
    groups: tuple = ()
    people: tuple = ()
    description: str = ""


@dataclass(frozen=True)
class PersonFacts:
    """What the ``[[people]]`` rules know of a person: their ``sub``, their username (a local
    account's; None for a person from the OpenID provider), their email if it is verified (an
    address nobody checked is not who they are), and their groups."""
    sub: str
    username: str | None = None
    email: str | None = None
    groups: tuple = ()

    def names(self) -> list[str]:
        return [name for name in (self.username, self.email, self.sub) if name]

    @classmethod
    def of(cls, person) -> PersonFacts:
        """The facts of ``person`` (a ``Person``, or a row with its columns)."""
        return cls(sub=person.public_id, username=person.username,
                   email=person.email if person.email_verified else None, groups=tuple(person.groups or ()))


@dataclass
class Policy:
    source: str
    rules: list[Rule] = field(default_factory=list)
    delegations: list[Delegation] = field(default_factory=list)
    workloads: list[WorkloadBinding] = field(default_factory=list)
    people: list[PeopleRule] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)

    def decide_task(self, *, client_id: str, owner: str, task: dict, scopes: list[str]) -> Decision:
        """May ``client_id`` (approved for ``owner``) get a token with ``scopes`` for ``task``?"""
        rule = next((r for r in self.rules if r.applies(client_id, owner, task["intent"])), None)
        if rule is None:
            return Decision(False, f"no policy rule allows intent '{safe_echo(task['intent'])}' "
                                   "for this client (deny by default)",
                            error="invalid_authorization_details")
        denied = _outside(rule, task, scopes)
        if denied:
            error, why = denied
            return Decision(False, f"rule {rule.name}: {why}", rule=rule.name, error=error)
        delegate = task.get("delegate")
        if delegate and not _match(delegate, rule.delegates):
            return Decision(False, f"rule {rule.name}: delegate {safe_echo(delegate)} is not allowed",
                            rule=rule.name, error="invalid_authorization_details")
        return Decision(True, f"rule {rule.name} allows intent {task['intent']}", rule=rule.name,
                        max_ttl=rule.max_ttl, granted=task, may_act=delegate)

    def delegation(self, *, actor: str, subject: str, intent: str) -> Delegation | None:
        """The delegation rule letting ``actor`` exchange tokens of ``subject``, if any."""
        return next((d for d in self.delegations if _match(actor, d.actors)
                     and _match(subject, d.subjects) and _match(intent, d.intents)), None)

    def workload(self, *, client_id: str, issuer: str, subject: str) -> WorkloadBinding | None:
        """The rule letting ``client_id`` present the workload identity ``subject`` from ``issuer``
        in token exchange (deny by default: a stolen workload JWT is useless without the bound
        client's credentials). The JWT bearer grant, where the JWT is the only credential, takes
        only the clients a rule names literally (``workload_clients``)."""
        return next((w for w in self.workloads if _match(client_id, w.clients)
                     and _match(issuer, w.issuers) and _match(subject, w.subjects)), None)

    def workload_clients(self, *, issuer: str, subject: str) -> dict[str, WorkloadBinding]:
        """The clients the rules binding ``subject`` from ``issuer`` name literally, each with
        the first rule that names it: a workload that presents its JWT as the grant and names no
        client (RFC 7523 §2.1, workload identity federation) gets the client if there is exactly
        one. A pattern names no one client, so it maps nothing."""
        named: dict[str, WorkloadBinding] = {}
        for binding in self.workloads:
            if _match(issuer, binding.issuers) and _match(subject, binding.subjects):
                for client_id in binding.clients:
                    if not _WILDCARD.search(client_id):
                        named.setdefault(client_id, binding)
        return named


    def decide_person(self, *, client_id: str, owner: str, person: PersonFacts) -> Decision:
        """May ``person`` authorize ``client_id`` (approved for ``owner``) to act for them? With no
        ``[[people]]`` rule at all, yes: any signed-in person, within the agent's approval. Once
        there is one, only if a rule matches the agent and the person (deny by default)."""
        if not self.people:
            return Decision(True, "no [[people]] rules: any signed-in person may authorize an approved agent")
        for rule in self.people:
            if not (_match(client_id, rule.clients) and _match(owner or "", rule.owners)):
                continue
            if any(_match(group, rule.groups) for group in person.groups) or any(
                    _match(name, rule.people) for name in person.names()):
                return Decision(True, f"rule {rule.name} lets this person authorize this agent", rule=rule.name)
        return Decision(False, "no [[people]] rule lets this person authorize this agent (deny by default)",
                        error="access_denied")


def _outside(rule: Rule, task: dict, scopes: list[str]) -> tuple[str, str] | None:
    extra = [s for s in scopes if not _match(s, rule.scopes)]
    if extra:
        return "invalid_scope", f"scope {' '.join(extra)} is not allowed for this intent"
    for name in ("locations", "datatypes"):
        # A rule that bounds a field requires it: a task that left it out would carry no bound.
        if getattr(rule, name) and not task.get(name):
            return ("invalid_authorization_details",
                    f"this intent is bounded by {name}: the agent_task must name its {name}")
    for name in ("actions", "locations", "datatypes"):
        extra = [v for v in task.get(name, ()) if not _match(v, getattr(rule, name))]
        if extra:
            return ("invalid_authorization_details",
                    f"{name} {', '.join(safe_echo(v) for v in extra)} not allowed for this intent")
    if agent_task.rank(task["sensitivity"]) > agent_task.rank(rule.max_sensitivity):
        return ("invalid_authorization_details",
                f"sensitivity {task['sensitivity']} is above {rule.max_sensitivity} for this intent")
    return None


_WILDCARD = re.compile(r"[*?\[]")  # what makes an fnmatch pattern more than one string


def _match(value: str, patterns) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def parse(text: str, source: str = "<policy>") -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    unknown = set(data) - {"rule", "delegation", "workload", "people", "example"}
    if unknown:
        raise PolicyError(f"{source}: unknown section {', '.join(sorted(unknown))}")
    policy = Policy(source)
    for i, item in enumerate(data.get("rule", []), 1):
        policy.rules.append(_rule(item, f"{source}: rule {i}"))
    for i, item in enumerate(data.get("delegation", []), 1):
        where = f"{source}: delegation {i}"
        _keys(item, DELEGATION_KEYS, where, required=("name", "actors", "subjects"))
        policy.delegations.append(Delegation(item["name"], _patterns(item, "actors", where),
                                             _patterns(item, "subjects", where),
                                             _patterns(item, "intents", where, ["*"])))
    for i, item in enumerate(data.get("workload", []), 1):
        where = f"{source}: workload {i}"
        _keys(item, WORKLOAD_KEYS, where, required=("name", "clients", "subjects"))
        policy.workloads.append(WorkloadBinding(item["name"], _patterns(item, "clients", where),
                                                _patterns(item, "subjects", where),
                                                _patterns(item, "issuers", where, ["*"])))
    for i, item in enumerate(data.get("people", []), 1):
        policy.people.append(_people_rule(item, f"{source}: people {i}"))
    names = [r.name for r in policy.rules] + [d.name for d in policy.delegations] + [
        w.name for w in policy.workloads] + [p.name for p in policy.people]
    if len(names) != len(set(names)):
        raise PolicyError(f"{source}: rule, delegation, workload and people names must be unique")
    policy.examples = data.get("example", [])
    _check_examples(policy)
    return policy


def _rule(item: dict, where: str) -> Rule:
    _keys(item, RULE_KEYS, where, required=("name", "intents", "clients", "scopes", "actions", "max_ttl"))
    sensitivity = item.get("max_sensitivity", "public")
    if sensitivity not in agent_task.SENSITIVITY:
        raise PolicyError(f"{where}: max_sensitivity must be one of {', '.join(agent_task.SENSITIVITY)}")
    if not isinstance(item["max_ttl"], int) or not 0 < item["max_ttl"] <= 86400:
        raise PolicyError(f"{where}: max_ttl must be a number of seconds (1 to 86400)")
    return Rule(name=str(item["name"]), intents=_patterns(item, "intents", where),
                clients=_patterns(item, "clients", where), owners=_patterns(item, "owners", where, ["*"]),
                scopes=_patterns(item, "scopes", where), actions=_patterns(item, "actions", where),
                locations=_patterns(item, "locations", where, []),
                datatypes=_patterns(item, "datatypes", where, []), max_sensitivity=sensitivity,
                max_ttl=item["max_ttl"], delegates=_patterns(item, "delegates", where, []),
                description=str(item.get("description", "")))


def _people_rule(item: dict, where: str) -> PeopleRule:
    _keys(item, PEOPLE_KEYS, where, required=("name", "clients"))
    rule = PeopleRule(name=str(item["name"]), clients=_patterns(item, "clients", where),
                      owners=_patterns(item, "owners", where, ["*"]), groups=_patterns(item, "groups", where, []),
                      people=_patterns(item, "people", where, []), description=str(item.get("description", "")))
    if not rule.groups and not rule.people:
        raise PolicyError(f"{where}: name the groups or the people (or both) that the rule lets authorize")
    return rule


def _keys(item, allowed, where, required=()):
    if not isinstance(item, dict):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(item) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown key {', '.join(sorted(unknown))}")
    missing = [k for k in required if k not in item]
    if missing:
        raise PolicyError(f"{where}: missing {', '.join(missing)}")


def _patterns(item, name, where, default=None) -> tuple:
    value = item.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: {name} must be a list of strings")
    return tuple(value)


def _check_examples(policy: Policy) -> None:
    for i, example in enumerate(policy.examples, 1):
        where = f"{policy.source}: example {i}" + (f" ({example.get('name')})" if "name" in example else "")
        _keys(example, EXAMPLE_KEYS, where, required=("client", "expect"))
        if example["expect"] not in ("allow", "deny"):
            raise PolicyError(f"{where}: expect must be allow or deny")
        if ("task" in example) == ("person" in example):
            raise PolicyError(f"{where}: an example has a task (for the [[rule]]s) or a person (for the "
                              "[[people]] rules), one of the two")
        if "person" in example:
            decision = policy.decide_person(client_id=example["client"], owner=example.get("owner", ""),
                                            person=_example_person(example["person"], where))
            _expected(example, decision, where)
            continue
        try:
            task = agent_task.normalise({"type": agent_task.TYPE, **example["task"]})
        except agent_task.AuthorizationDetailsError as exc:
            raise PolicyError(f"{where}: {exc}") from None
        decision = policy.decide_task(client_id=example["client"], owner=example.get("owner", ""),
                                      task=task, scopes=example.get("scopes", []))
        _expected(example, decision, where)


def _expected(example: dict, decision: Decision, where: str) -> None:
    if decision.allowed != (example["expect"] == "allow"):
        raise PolicyError(f"{where}: expected {example['expect']}, got "
                          f"{'allow' if decision.allowed else 'deny'}: {decision.reason}")


def _example_person(person, where: str) -> PersonFacts:
    """An example's person; its email is taken as verified, and its sub defaults to its username."""
    _keys(person, PERSON_KEYS, f"{where}: person")
    for name in ("sub", "username", "email"):
        if name in person and not (isinstance(person[name], str) and person[name]):
            raise PolicyError(f"{where}: person {name} must be a string")
    sub = person.get("sub") or person.get("username") or person.get("email")
    if not sub:
        raise PolicyError(f"{where}: the person needs a sub, a username or an email")
    return PersonFacts(sub=sub, username=person.get("username"), email=person.get("email"),
                       groups=_patterns(person, "groups", f"{where}: person", []))


_cache: dict[str, tuple[tuple, Policy]] = {}
_lock = threading.Lock()


def load(path: str | None = None) -> Policy:
    """The policy at ``path`` (default: the shipped file), re-read when the file changes.

    A file that became invalid keeps the last good policy in force (logged as an error);
    a file that was never valid raises ``PolicyError``."""
    path = str(path or SHIPPED)
    try:
        found = os.stat(path)
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror}") from None
    # mtime alone misses an edit made within the file system's timestamp tick (a few ms);
    # size and inode catch appends and editors that replace the file.
    version = (found.st_mtime_ns, found.st_size, found.st_ino)
    cached = _cache.get(path)
    if cached and cached[0] == version:
        return cached[1]
    with _lock:
        try:
            policy = parse(Path(path).read_text(), path)
        except (PolicyError, OSError) as exc:
            if cached:
                log.error("policy file %s is invalid, keeping the previous one: %s", path, exc)
                return cached[1]
            raise PolicyError(str(exc)) from None
        _cache[path] = (version, policy)
        log.info("loaded policy %s: %d rules, %d delegations, %d workload bindings, %d people rules, "
                 "%d examples checked", path, len(policy.rules), len(policy.delegations), len(policy.workloads),
                 len(policy.people), len(policy.examples))
        return policy
