"""RFC 7009 token revocation: a client revokes its own tokens, and with them everything
exchanged from them. Unknown, malformed and already-expired tokens answer 200 (§2.2)."""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint

from . import tokens
from .grants.base import AUTH_METHODS
from .introspection import find_token

log = logging.getLogger(__name__)


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string)

    def authenticate_token(self, request, client):
        """§2.1: the token must have been issued to the caller; otherwise refused, and it stays
        active."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token and not token.check_client(client):
            raise InvalidGrantError("the token was issued to another client; only that client may revoke it")
        return token

    def revoke_token(self, token, request):
        tokens.revoke(token.row.jti, actor=f"client:{request.client.client_id}",
                      reason="revoked by its client (RFC 7009)")
