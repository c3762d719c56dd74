"""The registered client as Authlib sees it (``ClientMixin``), read in one indexed query, or
at the token and introspection endpoints taken from a per-process cache that is checked.

The token endpoint's budget (docs/architecture.md) allows a cache of clients only if it can
never serve a client that another instance just suspended. This one decides nothing on its
own: a token decided on a cached record is written only if the group commit's transaction
finds the record unchanged (``changed_clients``); an introspection answers only if the
token's own read finds its caller unchanged (``confirm``); and a refusal is never given on
a cached record. Otherwise the request is answered again from a fresh read
(``StaleClient``, ``app.oauth.front``).
"""
from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar
from datetime import datetime
from typing import NamedTuple

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from flask import current_app
from sqlalchemy import bindparam, or_, select

from app.db import dbapi
from app.models import Approval, Client
from app.models.client import CLIENT_ID_MAX, might_be_id
from app.oauth.client_auth import AFTER_PROOF
from app.oauth.status import may_get_tokens
from app.registration import documents
from app.support import clock, hashing
from app.support.echo import safe_echo
from app.support.protocol import DEFAULT_GRANT_TYPES

log = logging.getLogger(__name__)


class ApprovalRecord(NamedTuple):
    """What the token endpoints read of a client's current approval."""
    id: int
    owner: str
    scopes: list
    audiences: list
    serves: list  # the resources this client is the relying service of (introspection)
    max_token_ttl: int
    expires_at: datetime
    review_at: datetime  # past it by REVIEW_GRACE_DAYS, no tokens (``status.standing``)


class ClientRecord(NamedTuple):
    """What the token endpoints read of a client: plain values, read once per request."""
    client_id: str
    status: str
    token_endpoint_auth_method: str
    secret_hash: str | None
    secret_expires_at: datetime | None
    previous_secret_hash: str | None  # the secret before a rotation, accepted until:
    previous_secret_until: datetime | None
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
CACHE_SIZE = 10_000  # clients; past that the cache starts again empty
_load_many: dict = {}  # count -> statement
_attempt: ContextVar[_Attempt | None] = ContextVar("ostiary_client_cache_attempt", default=None)


class StaleClient(Exception):
    """A token request was decided on a cached client record that the database no longer
    holds, or was about to be refused on one: nothing of it was written; answer it again."""


class _Attempt:
    served: ClientRecord | None = None  # the cached record this attempt was decided on


@contextlib.contextmanager
def cached_reads():
    """For one attempt at a token request: ``load_client`` may answer from the cache."""
    reset = _attempt.set(_Attempt())
    try:
        yield
    finally:
        _attempt.reset(reset)


def served_cached() -> ClientRecord | None:
    """The cached record the current attempt was decided on, if it was."""
    attempt = _attempt.get()
    return attempt.served if attempt is not None else None


class ClientCache:
    """Per process, by client id: the records the token endpoint last read."""

    def __init__(self):
        self._records: dict[str, ClientRecord] = {}

    def usable(self, client_id: str) -> ClientRecord | None:
        """The cached record if it would get a token now; any other is read again, so that
        no refusal, and no expiry at request time (``app.oauth.status``), rests on it."""
        record = self._records.get(client_id)
        return record if record is not None and may_get_tokens(record) else None

    def put(self, record: ClientRecord) -> None:
        """Cache ``record``; an equal one cached already stays, the same object (its key set
        is imported once, ``app.trust.keysets``)."""
        if self._records.get(record.client_id) == record:
            return
        if len(self._records) >= CACHE_SIZE:
            self._records.clear()
        self._records[record.client_id] = record

    def drop(self, client_id: str) -> None:
        self._records.pop(client_id, None)

    def refresh(self, client_id: str, current: ClientRecord | None) -> None:
        """What the database holds now for ``client_id`` (None: no such client)."""
        if current is None:
            self.drop(client_id)
        else:
            self.put(current)


def load_client(client_id: str) -> OAuthClient | None:
    """The client and its current approval: one indexed read (the token endpoint's budget), or
    inside ``cached_reads()`` the cached record, if it would get a token.

    The read is one statement in autocommit (``app.db.dbapi``), outside the request's session:
    on PostgreSQL one round trip, not three (BEGIN, SELECT, ROLLBACK). No lock is held: on
    SQLite, where every other transaction is ``BEGIN IMMEDIATE``, a read takes no write lock
    (WAL readers never block the writer); on PostgreSQL the row is not locked either. A
    suspension committed between this read and the issuance is no more visible to the
    issuance with a lock-free read than with READ COMMITTED.

    A URL client id (a client ID metadata document) costs more, for a reason: its document is
    resolved first (``app.registration.documents.resolve``), from this process's memory while it
    is fresh, else with one more indexed read, and once its cache time is over with a fetch and
    a write, each on a thread (``app.support.inline.blocking``) so that the loop serves others.
    """
    if not isinstance(client_id, str) or not client_id or (len(client_id) <= CLIENT_ID_MAX
                                                           and not might_be_id(client_id)):
        return None
    if documents.names_document(client_id):
        _resolve_document(client_id)  # a URL too long is refused there, saying so
    elif documents.switched_off(client_id) or len(client_id) > CLIENT_ID_MAX:
        return None
    attempt = _attempt.get()
    if attempt is not None:
        if attempt.served is not None:
            if attempt.served.client_id != client_id:
                raise StaleClient(client_id)  # a second client in one request: fresh reads only
            return OAuthClient(attempt.served)
        cache = current_app.extensions["ostiary.clients"]
        attempt.served = cache.usable(client_id)
        if attempt.served is not None:
            return OAuthClient(attempt.served)
    row = dbapi.fetch_one(LOAD, {"client_id": client_id})
    if row is None:
        return None
    record = _record(row)
    if attempt is not None:
        cache.put(record)
    return OAuthClient(record)


def _resolve_document(client_id: str) -> None:
    """A URL client id: its metadata document, registered or fresh (``app.registration.documents``)
    before the read; one it cannot use is the client's refusal, with the reason."""
    try:
        documents.resolve(client_id, first_sight=False)  # first seen at /authorize, rate-limited
    except documents.DocumentError as exc:
        refusal = InvalidClientError(status_code=401, description=safe_echo(str(exc), 400))
        # Its own description is the answer (app.oauth.server): the document is public, so the
        # reason tells a stranger nothing that fetching the URL would not.
        setattr(refusal, AFTER_PROOF, True)
        raise refusal from None


def changed_clients(connection, records: list[ClientRecord]) -> set[str]:
    """In the group commit's transaction: the ids of the clients whose cached ``records`` are
    no longer what the database holds, in one read. The cache takes what it holds now."""
    ids = sorted({record.client_id for record in records})
    current = {record.client_id: record for record in map(_record, connection.execute(
        _load_many_statement(len(ids)), {f"c{n}": client_id for n, client_id in enumerate(ids)}).all())}
    cache = current_app.extensions["ostiary.clients"]
    for client_id in ids:
        cache.refresh(client_id, current.get(client_id))
    return {record.client_id for record in records if current.get(record.client_id) != record}


def confirm(cached: ClientRecord, current: ClientRecord | None) -> None:
    """Raise ``StaleClient`` unless the database still holds ``cached`` (``current``, read in
    the same statement as what the request answers); the cache takes ``current``."""
    current_app.extensions["ostiary.clients"].refresh(cached.client_id, current)
    if current != cached:
        raise StaleClient(cached.client_id)


def record_of(row) -> ClientRecord | None:
    """The ``ClientRecord`` in ``row`` (``record_columns``' values), None if all are NULL."""
    return _record(row) if row[0] is not None else None


def _load_many_statement(count: int):
    """LOAD for ``count`` client ids (built once per count: ``app.db.dbapi`` has no expanding IN)."""
    if count not in _load_many:
        _load_many[count] = select(*_COLUMNS).select_from(_FROM).where(
            or_(*(_CLIENT.c.client_id == bindparam(f"c{n}") for n in range(count))))
    return _load_many[count]


def _record(row) -> ClientRecord:
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
        """The current secret, or the one it replaced while its grace period lasts
        (``lifecycle.rotate_secret``): checked against the clock on every request, so a
        cached record stops honouring it at its end time too."""
        if not hashing.verify(client_secret, self.row.secret_hash):
            row = self.row
            return (row.previous_secret_hash is not None and row.previous_secret_until is not None
                    and hashing.verify(client_secret, row.previous_secret_hash)
                    and clock.now() < row.previous_secret_until)
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

    def __repr__(self):
        return f"<OAuthClient {self.client_id} {self.row.status}>"
