"""Request-time decisions on scopes, audiences and task intent, deny by default.

Plain values in, a ``Decision`` out; no Flask, no database. The token grants ask, answer the
client with the decision's error, and write the decision with its reason to the audit trail.
"""
from .agent_task import AuthorizationDetailsError
from .approval import within_approval
from .rules import Decision, Policy, PolicyError, load, parse

__all__ = ["AuthorizationDetailsError", "Decision", "Policy", "PolicyError", "load", "parse",
           "within_approval"]
