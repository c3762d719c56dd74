"""RFC 7009 token revocation: a client revokes its own tokens, and with them everything
exchanged from them. Unknown, malformed and already-expired tokens answer 200 (§2.2)."""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint

from app.oauth import tokens
from app.oauth.introspection import TokenParameters, find_token

log = logging.getLogger(__name__)

ANOTHER_CLIENT = "the token was issued to another client; only that client may revoke it"


class RevocationEndpoint(TokenParameters, _RevocationEndpoint):
    def query_token(self, token_string, token_type_hint):
        return find_token(token_string)

    def authenticate_token(self, request, client):
        """Authlib's §2.1 check: the token must have been issued to the caller; otherwise the
        request is refused, and the token stays active. Authlib raises the refusal bare."""
        try:
            return super().authenticate_token(request, client)
        except InvalidGrantError as error:
            error.description = ANOTHER_CLIENT
            raise

    def revoke_token(self, token, request):
        tokens.revoke(token.row.jti, actor=f"client:{request.client.client_id}",
                      reason="revoked by its client (RFC 7009)")
