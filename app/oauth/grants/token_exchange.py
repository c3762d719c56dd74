"""RFC 8693 token exchange, scoped to one task's intent (RFC 9396 ``agent_task``).

Authlib ships no RFC 8693 grant; this one is written on its ``BaseGrant`` and
``TokenEndpointMixin`` like its own grants. Exchange only narrows: scopes within the subject
token's and the approval's, one audience within both, a life within the subject token's and
the policy's, authorization details within the subject token's task. A subject token issued to
another client, and any ``actor_token``, need the subject token's ``may_act`` or a policy
delegation rule to name the caller (Keycloak CVE-2022-1245 let any client exchange any token);
a workload JWT needs a policy workload rule binding its identity to the caller.
"""
from __future__ import annotations

import logging
import secrets

from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.grants.base import TokenEndpointMixin
from flask import current_app

from app.oauth import rfc9068, tokens
from app.oauth.errors import InvalidAuthorizationDetailsError, InvalidTargetError
from app.oauth.grants.base import OstiaryGrantMixin
from app.oauth.tokens import PresentedToken
from app.policy import agent_task
from app.support import clock
from app.support.echo import safe_echo
from app.support.protocol import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE
from app.support.resources import match
from app.trust import workload

log = logging.getLogger(__name__)

SUPPORTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
# RFC 8693 §4.1 sets no limit on nested ``act`` claims; each hop is one level of JSON nesting,
# and tokens are parsed with a bounded depth (app.support.untrusted_json), so the chain stops well short.
MAX_DELEGATION_HOPS = 8


class TokenExchangeGrant(OstiaryGrantMixin, BaseGrant, TokenEndpointMixin):
    GRANT_TYPE = TOKEN_EXCHANGE

    def validate_token_request(self):
        """RFC 8693 §2.1 parameters, then the narrowing rules and the approval, then the intent policy."""
        client = self.authenticate_for_grant()
        form = self.request.payload.data
        for name in ("subject_token", "subject_token_type", "actor_token", "actor_token_type",
                     "requested_token_type", "authorization_details"):
            if len(self.request.payload.datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"{name} must be given once")
        if not form.get("subject_token") or not form.get("subject_token_type"):
            raise InvalidRequestError("subject_token and subject_token_type are required (RFC 8693 section 2.1)")
        if bool(form.get("actor_token")) != bool(form.get("actor_token_type")):
            raise InvalidRequestError("actor_token and actor_token_type go together (RFC 8693 section 2.1)")
        requested_type = form.get("requested_token_type")
        if requested_type and requested_type not in SUPPORTED_TOKEN_TYPES:
            raise InvalidRequestError(f"requested_token_type {safe_echo(requested_type)} is not supported; "
                                      f"this server issues {ACCESS_TOKEN_TYPE}")
        policy = self.policy()
        subject = self.presented(form["subject_token"], form["subject_token_type"], "subject_token", policy)
        actor = None
        if form.get("actor_token"):
            actor = self.presented(form["actor_token"], form["actor_token_type"], "actor_token", policy)
            if actor.ours and actor.holder != client.client_id:
                raise InvalidGrantError("the actor_token was issued to another client")

        task = self.requested_task(form.get("authorization_details"), subject)
        act, delegation = self.acting_party(policy, subject, actor, task["intent"])
        scopes = self.narrowed_scopes(subject)
        audience = self.narrowed_audience(subject)
        self.enforce_approval(scopes, [audience])
        decision = self.enforce(policy.decide_task(client_id=client.client_id, owner=client.approval.owner,
                                                   task=task, scopes=scopes))
        ttl = min(self.base_ttl(), subject.exp - int(clock.timestamp()), decision.max_ttl)
        if ttl <= 0:
            raise InvalidGrantError("the subject_token has expired")
        self.exchange = {"subject": subject, "actor": actor, "act": act, "delegation": delegation,
                         "task": task, "scopes": scopes, "audience": audience, "ttl": ttl}

    def create_token_response(self):
        ex, decision = self.exchange, self.request.decision
        subject: PresentedToken = ex["subject"]
        client = self.client
        task = None
        task_id = subject.row.task_id if subject.ours and subject.task else None
        if task_id is None:
            task_id = secrets.token_hex(16)  # never begins with "-", which `ostiary task end` would take for an option
            task = {"id": task_id, "client_id": client.client_id, "intent": ex["task"]["intent"],
                    "authorization_details": [ex["task"]], "created_at": clock.now(),
                    "ended_at": None, "outcome": None}
        extra = {"authorization_details": [ex["task"]], "task_id": task_id}
        if ex["act"]:
            extra["act"] = ex["act"]
        if decision.may_act:
            extra["may_act"] = {"client_id": decision.may_act, "sub": decision.may_act}
        minted = rfc9068.mint(client_id=client.client_id, subject=subject.sub, scopes=ex["scopes"],
                              audience=[ex["audience"]], ttl=ex["ttl"], grant_type=self.GRANT_TYPE,
                              owner=client.approval.owner, extra_claims=extra,
                              parent_jti=subject.row.jti if subject.ours else None, task_id=task_id)
        minted.extra = {"issued_token_type": ACCESS_TOKEN_TYPE, "authorization_details": [ex["task"]],
                        "task_id": task_id}
        policy_event = {"event_type": "policy.decision", "actor": decision.actor, "client_id": client.client_id,
                        "jti": minted.row["jti"], "task_id": task_id, "decision": "allow",
                        "reason": decision.reason, "data": decision.as_audit()}
        self.issue(minted, "token.exchanged", task=task, audits=[policy_event], data={
            "subject": {"sub": subject.sub, "jti": subject.row.jti if subject.ours else None,
                        "iss": subject.claims.get("iss"), "workload_rule": subject.binding},
            "act": ex["act"], "delegation": ex["delegation"], "authorization_details": [ex["task"]]})
        return 200, minted.response(), self.TOKEN_RESPONSE_HEADER

    # -- the steps, each raising the RFC error it is about ------------------------------------

    def presented(self, token: str, token_type: str, name: str, policy) -> PresentedToken:
        """An access token this server issued and that is still active, or a workload JWT from
        a trusted issuer (``…:jwt`` only) that a policy ``[[workload]]`` rule binds to the caller."""
        if token_type not in SUPPORTED_TOKEN_TYPES:
            raise InvalidRequestError(f"{name}_type {safe_echo(token_type)} is not supported; use "
                                      f"{ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}")
        claims = rfc9068.verify(token)
        if claims is not None:
            row = tokens.lookup(claims["jti"])
            if row is None:
                raise InvalidGrantError(f"the {name} is not known to this server")
            reason = tokens.inactive_reason(row)
            if reason:
                raise InvalidGrantError(f"the {name} is not active ({reason})")
            return PresentedToken(claims, row)
        if workload.unverified_issuer(token) == current_app.config["ISSUER"]:
            raise InvalidGrantError(f"the {name} is expired or does not verify")
        if token_type != JWT_TOKEN_TYPE:
            raise InvalidGrantError(f"the {name} was not issued by this server")
        try:
            claims = workload.verify(token)
        except workload.UntrustedWorkloadToken as exc:
            raise InvalidGrantError(f"the {name} is not accepted: {safe_echo(str(exc), 400)}") from None
        binding = policy.workload(client_id=self.client.client_id, issuer=claims["iss"], subject=claims["sub"])
        if binding is None:
            raise InvalidGrantError(f"no policy workload rule lets this client present "
                                    f"{safe_echo(claims['sub'], 200)} from {safe_echo(claims['iss'], 200)}")
        return PresentedToken(claims, binding=binding.name)

    def requested_task(self, raw: str | None, subject: PresentedToken) -> dict:
        """The agent_task asked for; a task token's task is inherited, field by field where the
        request leaves one out, and can only narrow."""
        try:
            task = agent_task.parse(raw, held=subject.task or None)
        except agent_task.AuthorizationDetailsError as exc:
            raise InvalidAuthorizationDetailsError(str(exc)) from None
        if subject.task:
            if task is None:  # inherited; a delegate is named for one hop, not passed on
                return {k: v for k, v in subject.task.items() if k != "delegate"}
            why = agent_task.narrower_than(task, subject.task)
            if why:
                raise InvalidAuthorizationDetailsError(f"exchange only narrows: {why}")
            return task
        if task is None:
            raise InvalidRequestError("authorization_details with one agent_task is required: a task "
                                      "token is issued for a stated task")
        return task

    def acting_party(self, policy, subject: PresentedToken, actor: PresentedToken | None, intent: str):
        """RFC 8693 §4.1 ``act``: who acts for the subject, if anyone other than its holder.

        Allowed when the subject token's ``may_act`` (§4.4) names the caller (or actor), or a
        policy delegation rule lets the caller act for the subject's holder."""
        caller = self.client.client_id
        crossing = subject.ours and subject.holder != caller
        held_act = subject.claims.get("act")
        if not crossing and actor is None:
            if held_act is None and subject.ours and subject.sub != subject.holder:
                # a person's token, exchanged by the agent it was issued to: the agent acts
                # for the person (RFC 8693 §4.1), and the task token says so
                return {"sub": caller}, None
            return held_act, None
        acting = actor.sub if actor else caller
        may_act = subject.claims.get("may_act") or {}
        named = isinstance(may_act, dict) and bool({may_act.get("client_id"), may_act.get("sub")} & {caller, acting})
        rule = policy.delegation(actor=caller, subject=subject.holder, intent=intent)
        if not named and rule is None:
            if crossing:
                raise InvalidGrantError("the subject_token was issued to another client, and neither its "
                                        "may_act nor a policy delegation rule names this client")
            raise InvalidGrantError("delegation refused: the subject_token's may_act does not name the "
                                    "actor and no policy delegation rule allows it")
        act = {"sub": acting, "client_id": caller}
        if held_act:
            if _chain_length(held_act) >= MAX_DELEGATION_HOPS:
                raise InvalidGrantError(f"the delegation chain is already {MAX_DELEGATION_HOPS} actors long; "
                                        "this server delegates no further")
            act["act"] = held_act  # RFC 8693 §4.1: nested for a chain of delegation
        return act, ("may_act" if named else f"policy:{rule.name}")

    def narrowed_scopes(self, subject: PresentedToken) -> list[str]:
        """The scopes asked for, or else those the subject token and the approval share, never
        wider than the subject token's; the approval is ``enforce_approval``'s to check. A
        workload JWT holds no scopes: only the approval bounds what it gets."""
        approved = self.client.approval.scopes
        held = subject.scopes if subject.ours else approved
        scopes = self.requested_scopes() or [s for s in held if s in approved]
        wider = sorted(set(scopes) - set(held)) if subject.ours else []
        if wider:
            raise InvalidScopeError(f"exchange only narrows: scope {safe_echo(' '.join(wider))} is not in "
                                    "the subject_token")
        if not scopes:
            raise InvalidScopeError("no scope left: the subject_token and the approval share none")
        return sorted(set(scopes))

    def narrowed_audience(self, subject: PresentedToken) -> str:
        """The one audience asked for, or else the one the subject token and the approval share,
        never outside the subject token's; as for scopes, the approval is checked after."""
        approved = self.client.approval.audiences
        asked = self.requested_audiences()
        if len(asked) > 1:
            raise InvalidTargetError("a task token has one audience: ask for one resource or audience")
        held = subject.audiences if subject.ours else approved
        if not asked:
            candidates = match(held, approved)[0]
            if len(candidates) != 1:
                raise InvalidTargetError("name the one resource (or audience) this task token is for; the "
                                         f"approval holds {safe_echo(' '.join(approved), 400) or 'none'}")
            return candidates[0]
        if subject.ours:
            found, _ = match(asked, held)
            if not found:
                raise InvalidTargetError(f"exchange only narrows: {safe_echo(asked[0], 200)} is not an audience "
                                         f"of the subject_token, which holds {safe_echo(' '.join(held), 400)}")
            return found[0]
        found, _ = match(asked, approved)  # granted as the approval spells it; if not held, the
        return found[0] if found else asked[0]  # approval's check refuses it, naming what it holds


def _chain_length(act: dict) -> int:
    """How many actors an ``act`` claim names, outermost first (RFC 8693 §4.1)."""
    hops = 0
    while isinstance(act, dict):
        hops, act = hops + 1, act.get("act")
    return hops
