"""RFC 7662 token introspection for authenticated callers.

§4 asks the server to make sure the caller is the protected resource the token is meant for.
So a caller may introspect a token issued to it, or a token addressed to a resource its
approval names it the relying service *of* (``Approval.serves``): a role an administrator
grants, distinct from being approved to *call* that resource (``Approval.audiences``), which
must not let one agent read another's ``sub``, owner and task. Anything else, and every
expired, revoked or unknown token, or one whose client is no longer active, answers
``{"active": false}`` (§2.2).
"""
from __future__ import annotations

import logging

from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from . import rfc9068, tokens
from .clients import confirm, served_cached
from .grants.base import AUTH_METHODS

log = logging.getLogger(__name__)


class PresentedToken:
    """A verified JWT with its ``tokens.TokenRecord``, in the shape Authlib's endpoints expect."""

    def __init__(self, claims: dict, row: tokens.TokenRecord):
        self.claims, self.row = claims, row

    def is_expired(self):
        return tokens.inactive_reason(self.row) == "expired"

    def is_revoked(self):
        return tokens.inactive_reason(self.row) is not None

    def check_client(self, client):
        return self.row.client_id == client.client_id


def find_token(token_string: str) -> PresentedToken | None:
    claims = rfc9068.verify(token_string)
    if claims is None:
        return None
    row = tokens.lookup(claims["jti"])
    return PresentedToken(claims, row) if row is not None else None


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        """The token; a caller authenticated from the client cache (``app.oauth.clients``) is
        read again in the same statement, and if it changed the request is answered again
        from a fresh read: no answer, not even ``active: false``, rests on a stale caller."""
        caller = served_cached()
        if caller is None:
            return find_token(token_string)
        claims = rfc9068.verify(token_string)
        row, current = tokens.lookup_with_caller(claims and claims["jti"], caller.client_id)
        confirm(caller, current)
        return PresentedToken(claims, row) if row is not None else None

    def check_permission(self, token, client, request):
        return token.check_client(client) or bool(set(token.row.audience) & set(client.approval.serves or ()))

    def introspect_token(self, token):
        """§2.2: the token's own claims, which are what a relying service would read offline."""
        return {"active": True, "token_type": "Bearer", **token.claims}
