"""RFC 6749 §4.4 client credentials, minting RFC 9068 JWT access tokens.

Budget (docs/architecture.md, "The token endpoint's budget"): one indexed read of the client
with its approval (from the checked cache, ``app.oauth.clients``: in the write transaction,
once per group), one write transaction (token row, audit event, the assertion's jti), one
signature.
"""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749 import grants

from app.oauth.errors import InvalidAuthorizationDetailsError
from app.oauth.grants.base import OstiaryGrantMixin
from app.oauth.rfc9068 import mint

log = logging.getLogger(__name__)


class ClientCredentialsGrant(OstiaryGrantMixin, grants.ClientCredentialsGrant):
    def validate_token_request(self):
        """Scopes (RFC 6749 §3.3) and targets (RFC 8707) must lie within the approval; none
        asked means the approval's own, never more."""
        self.authenticate_for_grant()
        if self.request.payload.data.get("authorization_details"):
            raise InvalidAuthorizationDetailsError(
                "task intents (agent_task) are granted by token exchange, not client_credentials")
        self.enforce_approval(self.requested_scopes(), self.requested_audiences())

    def create_token_response(self):
        granted = self.request.decision.granted
        approval = self.client.approval
        minted = mint(client_id=self.client.client_id, subject=self.client.client_id,
                      scopes=granted["scopes"], audience=granted["audiences"], ttl=self.base_ttl(),
                      grant_type=self.GRANT_TYPE, owner=approval.owner)
        self.issue(minted, "token.issued")
        return 200, minted.response(), self.TOKEN_RESPONSE_HEADER
