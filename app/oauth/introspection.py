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

from authlib.oauth2.rfc6749.errors import InvalidRequestError, UnsupportedTokenTypeError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from app.oauth import rfc9068, tokens
from app.oauth.clients import confirm, served_cached
from app.oauth.errors import FORM_BODY
from app.support.protocol import AUTH_METHODS, BEARER

log = logging.getLogger(__name__)

NO_TOKEN = f"the token parameter is required; {FORM_BODY}"
UNSUPPORTED_HINT = "token_type_hint is not a token type this server issues (access_token)"


def find_token(token_string: str) -> tokens.PresentedToken | None:
    claims = rfc9068.verify(token_string)
    if claims is None:
        return None
    row = tokens.lookup(claims["jti"])
    return tokens.PresentedToken(claims, row) if row is not None else None


class TokenParameters:
    """What introspection and revocation share: their client authentication methods, and the
    parameters they both take (RFC 7662 §2.1, RFC 7009 §2.1), whose refusals Authlib's
    ``check_params`` raises bare."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_params(self, request, client):
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError as error:
            error.description = UNSUPPORTED_HINT
            raise
        except InvalidRequestError as error:
            error.description = NO_TOKEN
            raise


class IntrospectionEndpoint(TokenParameters, _IntrospectionEndpoint):
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
        return tokens.PresentedToken(claims, row) if row is not None else None

    def check_permission(self, token, client, request):
        return token.check_client(client) or bool(set(token.row.audience) & set(client.approval.serves or ()))

    def introspect_token(self, token):
        """§2.2: the token's own claims, which are what a relying service would read offline."""
        return {"active": True, "token_type": BEARER, **token.claims}
