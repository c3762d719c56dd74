"""The registered client as Authlib sees it (``ClientMixin``), read in one indexed query."""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import clock, hashing
from ..extensions import db
from ..models import Client

log = logging.getLogger(__name__)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
DEFAULT_GRANT_TYPES = ("client_credentials",)


def load_client(client_id: str) -> OAuthClient | None:
    """The client and its current approval: one indexed read (DESIGN.md principle 8)."""
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    row = db.session.execute(
        select(Client).options(joinedload(Client.approval)).where(Client.client_id == client_id)
    ).scalar_one_or_none()
    return OAuthClient(row) if row is not None else None


class OAuthClient(ClientMixin):
    """Adapts a ``Client`` row to Authlib; status rules live in ``app.oauth.status``."""

    def __init__(self, row: Client):
        self.row = row
        self.client_id = row.client_id

    @property
    def approval(self):
        return self.row.approval

    @property
    def status(self) -> str:
        return self.row.status

    def get_client_id(self):
        return self.client_id

    def check_endpoint_auth_method(self, method, endpoint):
        """RFC 7591 §2: the client authenticates with the one method it registered, and only
        with a method this server still allows."""
        return (method == self.row.token_endpoint_auth_method
                and method in current_app.config["ALLOWED_AUTH_METHODS"])

    def check_client_secret(self, client_secret):
        if not hashing.verify(client_secret, self.row.secret_hash):
            return False
        expires = self.row.secret_expires_at
        if expires is not None and expires <= clock.now():
            raise InvalidClientError(
                status_code=401,
                description=f"the client secret expired at {expires.isoformat()}; "
                            "ask an administrator to rotate it")
        return True

    def check_grant_type(self, grant_type):
        """RFC 7591 §2 ``grant_types``: only what the client registered for."""
        registered = (self.row.client_metadata or {}).get("grant_types") or DEFAULT_GRANT_TYPES
        return grant_type in registered

    def registered_jwks(self) -> dict | None:
        return self.row.jwks

    def __repr__(self):
        return f"<OAuthClient {self.client_id} {self.row.status}>"
