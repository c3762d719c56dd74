"""Request-time decisions on scopes, audiences and task intent, and on which people may
authorize which agents (``Policy.decide_person``), deny by default, and the catalogue of scopes
and assurance levels they are judged against (``scopes``).

The decisions take plain values and give a ``Decision``; no Flask, no database. The token
grants ask, answer the client with the decision's error, and write the decision with its
reason to the audit trail.
"""
from app.policy.agent_task import AuthorizationDetailsError
from app.policy.approval import within_approval
from app.policy.rules import Decision, PersonFacts, Policy, PolicyError, load, parse

__all__ = ["AuthorizationDetailsError", "Decision", "PersonFacts", "Policy", "PolicyError", "load", "parse",
           "within_approval"]
