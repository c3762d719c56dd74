"""Read-only queries behind the console pages: the pending queue, the inventory, the trail.

Nothing here changes state; state changes go through the service modules.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import selectinload

from app.audit import trail
from app.console import lookalikes
from app.extensions import db
from app.models import Approval, AuditEvent, Client, IssuedToken, Publisher
from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, SUSPENDED
from app.support import clock, untrusted_json

log = logging.getLogger(__name__)

SECRET_WARNING = timedelta(days=14)  # a secret expiring sooner needs rotating
INVENTORY_PAGE = 50
AUDIT_PAGE = 100
TIMELINE = 50  # events on a client's page; the rest are in the audit trail's search

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
    host: str | None = None
    clients: list = field(default_factory=list)
    # client_id -> how many other registrations presented the very same statement
    same_statement: dict = field(default_factory=dict)
    # client_id -> what the reviewer should know before approving (impersonation, look-alikes)
    warnings: dict = field(default_factory=dict)


def source_host(client: Client) -> str | None:
    """The host a registration says it comes from: its ``jwks_uri``, else its ``client_uri``,
    else its first redirect URI (lower-case, as URLs compare hosts)."""
    metadata = client.client_metadata or {}
    for value in (client.jwks_uri, metadata.get("client_uri"), *(metadata.get("redirect_uris") or [])[:1]):
        if isinstance(value, str) and value:
            try:
                host = urlsplit(value).hostname
            except ValueError:
                continue
            if host:
                return host
    return None


def pending_groups() -> list[PendingGroup]:
    """Pending registrations grouped by what identifies the agent, largest group first, so
    floods stand out.

    A verified statement groups by publisher and ``software_id`` (the publisher vouches for
    the software, wherever it registers from); a self-asserted registration by everything it
    presents about itself: its claimed ``software_id``, the host of its URLs
    (``source_host``) and the address it came from, so two unrelated agents behind one
    address are two groups.
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
            host = source_host(c)
            key = f"self:{c.software_id or ''}:{host or ''}:{c.registered_from or ''}"
            group = groups.setdefault(key, PendingGroup(key, False, None, c.software_id, c.registered_from,
                                                        host))
        group.clients.append(c)
    counts = _statement_uses(clients)
    warnings = pending_warnings(clients)
    for group in groups.values():
        group.same_statement = {c.client_id: counts[c.statement_digest] - 1 for c in group.clients
                                if counts.get(c.statement_digest, 0) > 1}
        group.warnings = {c.client_id: warnings[c.client_id] for c in group.clients if warnings.get(c.client_id)}
    return sorted(groups.values(), key=lambda g: (-len(g.clients), g.clients[0].created_at))


def pending_warnings(clients: list[Client]) -> dict[str, list[str]]:
    """client_id -> warnings for a reviewer: a self-asserted registration that claims the
    ``software_id`` or name of a client a verified publisher vouched for ("possible
    impersonation", exactly or by look-alike characters), and a name that mixes scripts or
    imitates another script's letters (``app.console.lookalikes``)."""
    held = _verified_names() if any(not c.publisher_id for c in clients) else {}
    found: dict[str, list[str]] = {}
    for c in clients:
        notes = lookalikes.warnings(c.client_name)
        if not c.publisher_id:
            for what, value in (("software_id", c.software_id), ("name", c.client_name)):
                issuer = held.get((what, lookalikes.skeleton(value))) if value else None
                if issuer is not None:
                    exact, publisher = issuer
                    how = "is" if value in exact else "looks like"
                    notes.insert(0, f"possible impersonation: its {what} {how} that of a client of "
                                    f"verified publisher {publisher}")
        if notes:
            found[c.client_id] = notes
    return found


def _verified_names() -> dict[tuple[str, str], tuple[set, str]]:
    """("software_id" | "name", skeleton) -> (the values as registered, one publisher's issuer),
    over the clients of verified publishers that were not denied."""
    rows = db.session.execute(
        select(Client.software_id, Client.client_name, Publisher.issuer)
        .join(Publisher, Publisher.id == Client.publisher_id)
        .where(Client.status != DENIED).distinct()).all()
    held: dict[tuple[str, str], tuple[set, str]] = {}
    for software_id, name, issuer in rows:
        for what, value in (("software_id", software_id), ("name", name)):
            if value:
                exact, _ = held.setdefault((what, lookalikes.skeleton(value)), (set(), issuer))
                exact.add(value)
    return held


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
    """What needs attention on one client, as shown in its row; ``_flag_condition`` is the
    same rule in SQL, for the inventory's filter (a test holds the two together)."""
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


def _last_token():
    """The client's last token, a correlated subquery that reads the index on
    (client_id, issued_at) backwards: one index probe per client, however many tokens."""
    return (select(func.max(IssuedToken.issued_at)).where(IssuedToken.client_id == Client.client_id)
            .correlate(Client).scalar_subquery())


def _flag_condition(flag: str, last_token, unused_days: int):
    """``attention_flags`` in SQL (the inventory is joined to the client's approval)."""
    now = clock.now()
    live = Client.status.in_((ACTIVE, SUSPENDED))
    has_approval = Approval.id.is_not(None)
    return {
        "no_owner": and_(live, or_(~has_approval, func.trim(func.coalesce(Approval.owner, "")) == "")),
        "expired": or_(Client.status == EXPIRED, and_(live, has_approval, Approval.expires_at <= now)),
        "review_overdue": and_(live, has_approval, Approval.review_at <= now),
        "secret_expiring": and_(live, Client.secret_expires_at.is_not(None),
                                Client.secret_expires_at <= now + SECRET_WARNING),
        "never_used": and_(Client.status == ACTIVE, last_token.is_(None)),
        "unused": and_(Client.status == ACTIVE, last_token <= now - timedelta(days=unused_days)),
    }[flag]


LAST_USED = {
    "within": "issued a token in the last N days",
    "not_within": "no token in the last N days",
    "never": "never issued a token",
}


def _last_used_condition(last_used: str, last_token, days: int):
    since = clock.now() - timedelta(days=days)
    return {"within": last_token > since,
            "not_within": or_(last_token.is_(None), last_token <= since),
            "never": last_token.is_(None)}[last_used]


SORTS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "name": "name",
    "status": "status",
    "owner": "owner",
    "expires": "approval expires soonest",
    "review": "review due soonest",
    "last_token": "last token, most recent first",
}


def _ordering(sort: str, last_token) -> list:
    """ORDER BY for ``sort``, empty values last on every database (SQLite puts NULL first,
    PostgreSQL last), the client id last so that pages never overlap."""
    def nulls_last(column, descending=False):
        return [column.is_(None), column.desc() if descending else column]
    by = {
        "newest": [Client.created_at.desc()],
        "oldest": [Client.created_at],
        "name": nulls_last(func.lower(Client.client_name)),
        "status": [Client.status, Client.created_at.desc()],
        "owner": nulls_last(func.lower(Approval.owner)),
        "expires": nulls_last(Approval.expires_at),
        "review": nulls_last(Approval.review_at),
        "last_token": nulls_last(last_token, descending=True),
    }[sort]
    return [*by, Client.client_id]


@dataclass
class InventoryFilter:
    """What the inventory is asked for; every part of it runs in SQL, over every client."""
    search: str = ""
    status: str | None = None
    assurance: int | None = None
    flag: str | None = None
    last_used: str | None = None
    unused_days: int = 30
    sort: str = "newest"
    page: int = 1


@dataclass
class InventoryPage:
    rows: list[InventoryRow]
    total: int  # how many clients match, over every page
    page: int
    pages: int


def _like(term: str) -> str:
    r"""A LIKE pattern that finds ``term`` anywhere, its own ``%``, ``_`` and ``\`` literal."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search_condition(term: str):
    """Case-insensitive, anywhere in: name, owner, client id, software id, the verified
    publisher, the address it registered from and the hosts of its URLs (``source_host``)."""
    pattern = _like(term)
    columns = (Client.client_name, Approval.owner, Client.client_id, Client.software_id, Publisher.issuer,
               Client.registered_from, Client.jwks_uri, Client.client_metadata["client_uri"].as_string())
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def inventory(wanted: InventoryFilter, page_size: int = INVENTORY_PAGE) -> InventoryPage:
    """One page of the clients matching ``wanted``, and how many match in all: search,
    filters and sort are one SQL query over every client, so an old client is found as
    surely as a new one."""
    last_token = _last_token()
    conditions = []
    if wanted.search.strip():
        conditions.append(_search_condition(wanted.search.strip()))
    if wanted.status:
        conditions.append(Client.status == wanted.status)
    if wanted.assurance is not None:
        conditions.append(Approval.assurance_level == wanted.assurance)
    if wanted.flag:
        conditions.append(_flag_condition(wanted.flag, last_token, wanted.unused_days))
    if wanted.last_used:
        conditions.append(_last_used_condition(wanted.last_used, last_token, wanted.unused_days))

    def joined(query):
        return (query.outerjoin(Approval, Approval.id == Client.approval_id)
                .outerjoin(Publisher, Publisher.id == Client.publisher_id).where(*conditions))

    total = db.session.scalar(joined(select(func.count()).select_from(Client)))
    pages = max(1, -(-total // page_size))
    page = min(max(1, wanted.page), pages)
    query = (joined(select(Client, last_token)).order_by(*_ordering(wanted.sort, last_token))
             .limit(page_size).offset((page - 1) * page_size)
             .options(selectinload(Client.approval), selectinload(Client.publisher)))
    found = db.session.execute(query).all()
    usage = token_usage([c.client_id for c, _ in found])
    rows = []
    for c, last in found:
        _, count = usage.get(c.client_id, (None, 0))
        rows.append(InventoryRow(c, last, count, attention_flags(c, last, wanted.unused_days)))
    return InventoryPage(rows, total, page, pages)


def clients_by_id(client_ids: list[str]) -> list[Client]:
    """The clients of ``client_ids`` that exist, in the order given (for a bulk action's
    confirmation page)."""
    if not client_ids:
        return []
    found = {c.client_id: c for c in db.session.execute(
        select(Client).where(Client.client_id.in_(client_ids))).scalars()}
    return [found[i] for i in client_ids if i in found]


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


def client_timeline(client_id: str, limit: int = TIMELINE) -> tuple[list[AuditEvent], bool]:
    """The newest ``limit`` audit events about one client, newest first, and whether there
    are older ones (the audit trail's search, filtered by this client, shows them all)."""
    events = db.session.execute(trail.matching(client_id=client_id, newest_first=True)
                                .limit(limit + 1)).scalars().all()
    return events[:limit], len(events) > limit
