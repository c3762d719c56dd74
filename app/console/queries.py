"""Read-only queries behind the console pages: the pending queue, the inventory, the trail.

Nothing here changes state; state changes go through the service modules.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import AuditEvent, Client, IssuedToken
from app.models.client import ACTIVE, EXPIRED, PENDING, SUSPENDED
from app.support import clock, untrusted_json

log = logging.getLogger(__name__)

SECRET_WARNING = timedelta(days=14)  # a secret expiring sooner needs rotating
INVENTORY_LIMIT = 500
AUDIT_PAGE = 100

FLAGS = {
    "no_owner": "no owner",
    "expired": "expired",
    "review_overdue": "review overdue",
    "secret_expiring": "secret near expiry",
    "never_used": "never used",
    "unused": "unused",
}


@dataclass
class PendingGroup:
    key: str
    verified: bool
    publisher: str | None
    software_id: str | None
    address: str | None
    clients: list = field(default_factory=list)
    # client_id -> how many other registrations presented the very same statement
    same_statement: dict = field(default_factory=dict)


def pending_groups() -> list[PendingGroup]:
    """Pending registrations grouped by provenance, largest group first, so floods stand out.

    A verified statement groups by publisher and ``software_id``; a self-asserted
    registration by its claimed ``software_id`` and the address it came from.
    """
    clients = db.session.execute(
        select(Client).where(Client.status == PENDING).order_by(Client.created_at)
        .options(selectinload(Client.publisher))
    ).scalars().all()
    groups: dict[str, PendingGroup] = {}
    for c in clients:
        if c.publisher_id:
            key = f"publisher:{c.publisher_id}:{c.software_id or ''}"
            group = groups.setdefault(key, PendingGroup(key, True, c.publisher.issuer, c.software_id, None))
        else:
            key = f"self:{c.software_id or ''}:{c.registered_from or ''}"
            group = groups.setdefault(key, PendingGroup(key, False, None, c.software_id, c.registered_from))
        group.clients.append(c)
    counts = _statement_uses(clients)
    for group in groups.values():
        group.same_statement = {c.client_id: counts[c.statement_digest] - 1 for c in group.clients
                                if counts.get(c.statement_digest, 0) > 1}
    return sorted(groups.values(), key=lambda g: (-len(g.clients), g.clients[0].created_at))


def _statement_uses(clients: list[Client]) -> dict[str, int]:
    """statement digest -> how many registrations, of any status, presented that very
    statement, for the statements of ``clients``: a replayed copy shows up in the queue."""
    digests = {c.statement_digest for c in clients if c.statement_digest}
    if not digests:
        return {}
    return dict(db.session.execute(
        select(Client.statement_digest, func.count()).where(Client.statement_digest.in_(digests))
        .group_by(Client.statement_digest)).all())


@dataclass
class InventoryRow:
    client: Client
    last_token: datetime | None
    tokens_24h: int
    flags: list[str]


def token_usage(client_ids: list[str] | None = None) -> dict[str, tuple[datetime | None, int]]:
    """client_id -> (last token issued, tokens issued in the last 24 h), in one grouped query."""
    since = clock.now() - timedelta(hours=24)
    query = select(IssuedToken.client_id, func.max(IssuedToken.issued_at),
                   func.sum(case((IssuedToken.issued_at >= since, 1), else_=0))
                   ).group_by(IssuedToken.client_id)
    if client_ids is not None:
        query = query.where(IssuedToken.client_id.in_(client_ids))
    return {cid: (last, int(count or 0)) for cid, last, count in db.session.execute(query)}


def attention_flags(client: Client, last_token: datetime | None, unused_days: int) -> list[str]:
    now, approval = clock.now(), client.approval
    live = client.status in (ACTIVE, SUSPENDED)
    flags = []
    if live and (approval is None or not (approval.owner or "").strip()):
        flags.append("no_owner")
    if client.status == EXPIRED or (live and approval is not None and approval.expires_at <= now):
        flags.append("expired")
    if live and approval is not None and approval.review_at <= now:
        flags.append("review_overdue")
    if live and client.secret_expires_at is not None and client.secret_expires_at <= now + SECRET_WARNING:
        flags.append("secret_expiring")
    if client.status == ACTIVE:
        if last_token is None:
            flags.append("never_used")
        elif last_token <= now - timedelta(days=unused_days):
            flags.append("unused")
    return flags


def inventory(status: str | None, flag: str | None, unused_days: int) -> list[InventoryRow]:
    query = (select(Client).order_by(Client.created_at.desc()).limit(INVENTORY_LIMIT)
             .options(selectinload(Client.approval)))
    if status:
        query = query.where(Client.status == status)
    clients = db.session.execute(query).scalars().all()
    usage = token_usage([c.client_id for c in clients])
    rows = []
    for c in clients:
        last, count = usage.get(c.client_id, (None, 0))
        flags = attention_flags(c, last, unused_days)
        if not flag or flag in flags:
            rows.append(InventoryRow(c, last, count, flags))
    return rows


def statement_claims(client: Client) -> tuple[dict | None, dict | None, str | None]:
    """The software statement's header and claims, decoded for display only (never trusted here:
    verification happened at registration, and its result is the client's publisher)."""
    if not client.software_statement:
        return None, None, None
    try:
        compact = jws.extract_compact(client.software_statement.encode())
        claims = untrusted_json.loads(compact.payload, what="the statement's payload")
    except (JoseError, ValueError) as exc:
        return None, None, f"cannot decode: {exc}"
    if not isinstance(claims, dict):
        return compact.headers(), None, "the payload is not a JSON object"
    return compact.headers(), claims, None


def key_thumbprints(client: Client) -> list[tuple[str, str]]:
    """(kty/alg, RFC 7638 thumbprint) of each key the client registered inline."""
    if not client.jwks:
        return []
    try:
        keys = KeySet.import_key_set(client.jwks).keys
    except (JoseError, ValueError, TypeError) as exc:
        log.info("client %r has jwks that do not import: %s", client.client_id, exc)
        return [("unreadable", str(exc))]
    return [(f"{k.key_type} {k.get('alg') or ''}".strip(), k.thumbprint()) for k in keys]


def audit_page(query, before: int | None) -> list[AuditEvent]:
    if before:
        query = query.where(AuditEvent.id < before)
    return db.session.execute(query.limit(AUDIT_PAGE)).scalars().all()
