"""The registered client as Authlib sees it (``ClientMixin``), read with its current approval
in one indexed query, once per request."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from flask import current_app
from sqlalchemy import bindparam, select

from .. import clock, database, hashing
from ..models import Approval, Client

log = logging.getLogger(__name__)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
DEFAULT_GRANT_TYPES = ("client_credentials",)


class ApprovalRecord(NamedTuple):
    """What the token endpoints read of a client's current approval."""
    id: int
    owner: str
    scopes: list
    audiences: list
    serves: list  # the resources this client is the relying service of (introspection)
    max_token_ttl: int
    expires_at: datetime


class ClientRecord(NamedTuple):
    """What the token endpoints read of a client: plain values, read once per request."""
    client_id: str
    status: str
    token_endpoint_auth_method: str
    secret_hash: str | None
    secret_expires_at: datetime | None
    client_metadata: dict | None
    jwks: dict | None
    jwks_uri: str | None
    approval: ApprovalRecord | None


_CLIENT, _APPROVAL = Client.__table__, Approval.__table__
_N_CLIENT = len(ClientRecord._fields) - 1


def record_columns(client, approval) -> list:
    """The columns of a ``ClientRecord``, from ``client`` and ``approval`` (tables or aliases)."""
    return [*(client.c[name] for name in ClientRecord._fields[:-1]),
            *(approval.c[name] for name in ApprovalRecord._fields)]


_COLUMNS = record_columns(_CLIENT, _APPROVAL)
_FROM = _CLIENT.outerjoin(_APPROVAL, _APPROVAL.c.id == _CLIENT.c.approval_id)
LOAD = select(*_COLUMNS).select_from(_FROM).where(_CLIENT.c.client_id == bindparam("client_id"))


def load_client(client_id: str) -> OAuthClient | None:
    """The client and its current approval: one indexed read in autocommit
    (``app.database.read``), so no lock is held while the request is decided. A suspension
    committed between this read and the issuance is no more visible to the issuance than it
    would be under READ COMMITTED; the token's row is then written, and is revoked with every
    other token of the client (``Client.tokens_not_before``)."""
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    row = database.read_one(LOAD, {"client_id": client_id})
    return OAuthClient(record_of(row)) if row is not None else None


def record_of(row) -> ClientRecord | None:
    """The ``ClientRecord`` in ``row`` (``record_columns``' values), None if all are NULL."""
    if row[0] is None:
        return None
    approval = ApprovalRecord(*row[_N_CLIENT:]) if row[_N_CLIENT] is not None else None
    return ClientRecord(*row[:_N_CLIENT], approval)


class OAuthClient(ClientMixin):
    """Adapts a ``ClientRecord`` to Authlib; status rules live in ``app.oauth.status``."""

    def __init__(self, row: ClientRecord):
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
