"""What the grants share, as a mixin (Authlib style): client auth methods, RFC 8707 targets
(compared as resource identifiers, ``app.support.resources``), the intent policy, turning a
policy ``Decision`` into the RFC error, and the single write of an issuance."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app

from app import audit
from app.oauth.clients import served_cached
from app.oauth.errors import (
    InvalidAuthorizationDetailsError,
    InvalidTargetError,
    PolicyUnavailableError,
)
from app.oauth.group_commit import Write
from app.policy import PolicyError, load, within_approval
from app.support.echo import safe_echo
from app.support.protocol import AUTH_METHODS

log = logging.getLogger(__name__)

ERRORS = {"invalid_scope": InvalidScopeError, "invalid_target": InvalidTargetError,
          "invalid_authorization_details": InvalidAuthorizationDetailsError,
          "invalid_grant": InvalidGrantError, "invalid_request": InvalidRequestError}


class OstiaryGrantMixin:
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_for_grant(self):
        """Authenticate the client (the server also checks its status) and its grant type."""
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"the client did not register for grant_type {self.GRANT_TYPE}")
        self.request.client = client
        return client

    def requested_scopes(self) -> list[str]:
        if len(self.request.payload.datalist.get("scope", [])) > 1:
            raise InvalidRequestError("scope must be given once (space-separated)")
        return scope_to_list(self.request.payload.scope) or []

    def requested_audiences(self) -> list[str]:
        """RFC 8707 ``resource`` (absolute URIs, no fragment) and RFC 8693 ``audience`` values."""
        datalist = self.request.payload.datalist
        for uri in datalist.get("resource", []):
            parts = urlsplit(uri)
            if not parts.scheme or not parts.netloc or "#" in uri:
                raise InvalidTargetError(f"resource {safe_echo(uri)} is not an absolute URI without a "
                                         "fragment (RFC 8707 section 2)")
        return list(dict.fromkeys([*datalist.get("resource", []), *datalist.get("audience", [])]))

    def policy(self):
        """The intent policy in force; none readable, nothing issued (deny by default)."""
        try:
            return load(current_app.config["POLICY_FILE"] or None)
        except PolicyError as exc:
            log.error("intent policy unusable: %s", exc)
            raise PolicyUnavailableError() from None

    def enforce(self, decision):
        """Keep the decision for the audit trail; raise its RFC error if it denies."""
        self.request.decision = decision
        if not decision.allowed:
            raise ERRORS[decision.error](decision.reason)
        return decision

    def enforce_approval(self, scopes: list[str], audiences: list[str]):
        """The scopes and audiences must lie within the client's approval (``within_approval``:
        resources compared after RFC 3986 §6.2.2.1 normalisation, granted as the approval spells
        them, a refusal naming the resources it holds); none asked means the approval's own."""
        approval = self.client.approval
        return self.enforce(within_approval(approved_scopes=approval.scopes,
                                            approved_audiences=approval.audiences,
                                            scopes=scopes, audiences=audiences))

    def base_ttl(self) -> int:
        """RFC 9068 §2.2: minutes, never more than the approval allows."""
        return min(int(current_app.config["ACCESS_TOKEN_TTL"]), int(self.client.approval.max_token_ttl))

    def issue(self, minted, event_type: str, *, task=None, audits=(), data=None, spend=None, rows=()):
        """The one write of an issuance (``app.oauth.group_commit``): the token row, the task row
        it starts, the assertion's jti, the code or refresh token it uses up (``spend``), the rows
        it adds (a refresh token) and the audit events, in one group-committed transaction."""
        row = minted.row
        decision = self.request.decision
        events = [audit.values(**event) for event in audits]
        events.append(audit.values(
            event_type, f"client:{self.client.client_id}", client_id=self.client.client_id,
            jti=row["jti"], task_id=row["task_id"], decision="allow", reason=decision.reason,
            data={"grant_type": self.GRANT_TYPE, "scope": row["scope"], "aud": row["audience"],
                  "exp": minted.claims["exp"], "auth_method": self.request.auth_method, **(data or {})}))
        current_app.extensions["ostiary.group_commit"].write(Write(
            events, token=row, task=task, jti=self.request.assertion_jti,
            client=served_cached(), spend=spend, rows=list(rows)))
        self.request.assertion_jti = None  # spent with the token
        log.info("issued %s to %r (%s)", row["jti"], self.client.client_id, event_type)
