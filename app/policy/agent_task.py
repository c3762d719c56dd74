"""The ``agent_task`` authorization details type (RFC 9396 §2), Ostiary's task intent.

One object describes one task::

    {"type": "agent_task",
     "intent": "summarize-reports",             # required: what the task is for
     "description": "weekly summary for ops",   # optional, for people reading the audit trail
     "actions": ["read"],                       # required: what the agent will do
     "locations": ["https://api.example.com/reports"],  # optional: where (RFC 9396 §2.2)
     "datatypes": ["report"],                   # optional: what kinds of data
     "sensitivity": "internal",                 # optional: public < internal < confidential
                                                #   < restricted (default public)
     "delegate": "client-id-of-a-sub-agent"}    # optional: who may exchange the task token

Parsing is strict: an unknown type or field, or a value of the wrong shape, is refused
(``invalid_authorization_details``), never ignored.
"""
from __future__ import annotations

import logging

from app.support.echo import safe_echo
from app.support.untrusted_json import loads

log = logging.getLogger(__name__)

TYPE = "agent_task"
SENSITIVITY = ("public", "internal", "confidential", "restricted")
FIELDS = {"type", "intent", "description", "actions", "locations", "datatypes", "sensitivity", "delegate"}
MAX_ITEMS = 32


class AuthorizationDetailsError(ValueError):
    """Malformed or unknown authorization details; the message says what, for the agent's author."""


def parse(raw: str | None, held: dict | None = None) -> dict | None:
    """The one ``agent_task`` in an ``authorization_details`` parameter (a JSON array), normalised,
    or None when the parameter is absent.

    ``held``: the task of the token being exchanged. A field the request leaves out is that
    task's, never unbounded (a delegate is named for one hop and is not passed on); whether
    the result is within ``held`` is ``narrower_than``'s question."""
    if raw is None or raw == "":
        return None
    try:
        details = loads(raw, what="authorization_details")
    except ValueError as exc:  # UntrustedJSONError: its message says what is wrong
        raise AuthorizationDetailsError(str(exc)) from None
    if not isinstance(details, list) or not details:
        raise AuthorizationDetailsError("authorization_details must be a non-empty JSON array (RFC 9396 section 2)")
    for item in details:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise AuthorizationDetailsError("each authorization_details entry must be an object with a type")
        if item["type"] != TYPE:
            raise AuthorizationDetailsError(f"authorization_details type '{safe_echo(item['type'])}' is not "
                                            f"defined by this server (supported: {TYPE})")
    if len(details) != 1:
        raise AuthorizationDetailsError("one agent_task per token: a task token is for one task")
    item = details[0]
    if held is not None:
        item = {**{k: v for k, v in held.items() if k != "delegate"}, **item}
    return normalise(item)


def normalise(item: dict) -> dict:
    unknown = set(item) - FIELDS
    if unknown:
        raise AuthorizationDetailsError(f"agent_task has unknown fields: {', '.join(sorted(map(safe_echo, unknown)))}")
    intent = item.get("intent")
    if not isinstance(intent, str) or not 0 < len(intent) <= 128:
        raise AuthorizationDetailsError("agent_task needs an intent: a string of at most 128 characters")
    out = {"type": TYPE, "intent": intent}
    if "description" in item:
        if not isinstance(item["description"], str) or len(item["description"]) > 500:
            raise AuthorizationDetailsError("agent_task description must be a string of at most 500 characters")
        out["description"] = item["description"]
    out["actions"] = _strings(item, "actions", required=True)
    for name in ("locations", "datatypes"):
        if name in item:
            out[name] = _strings(item, name)
    sensitivity = item.get("sensitivity", "public")
    if sensitivity not in SENSITIVITY:
        raise AuthorizationDetailsError(f"agent_task sensitivity must be one of {', '.join(SENSITIVITY)}")
    out["sensitivity"] = sensitivity
    if "delegate" in item:
        if not isinstance(item["delegate"], str) or not 0 < len(item["delegate"]) <= 64:
            raise AuthorizationDetailsError("agent_task delegate must be a client_id")
        out["delegate"] = item["delegate"]
    return out


def narrower_than(requested: dict, held: dict) -> str | None:
    """Why ``requested`` is not within ``held`` (a re-exchange never widens), or None."""
    if requested["intent"] != held["intent"]:
        return f"the intent must stay '{safe_echo(held['intent'])}'"
    for name in ("actions", "locations", "datatypes"):
        extra = set(requested.get(name, ())) - set(held.get(name, ()))
        if name in held and extra:
            return f"{name} {', '.join(sorted(map(safe_echo, extra)))} not in the subject token's task"
        if name not in held and name in requested and name != "actions":
            return f"the subject token's task names no {name}"
    if rank(requested["sensitivity"]) > rank(held["sensitivity"]):
        return f"sensitivity {requested['sensitivity']} is above the subject token's {held['sensitivity']}"
    return None


def rank(sensitivity: str) -> int:
    return SENSITIVITY.index(sensitivity)


def _strings(item: dict, name: str, required: bool = False) -> list[str]:
    value = item.get(name)
    if value is None and not required:
        return []
    if (not isinstance(value, list) or not value or len(value) > MAX_ITEMS
            or not all(isinstance(v, str) and 0 < len(v) <= 512 for v in value)):
        raise AuthorizationDetailsError(f"agent_task {name} must be a non-empty list of strings")
    return sorted(set(value))
