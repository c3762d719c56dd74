"""Read-only queries behind the console pages: the pending queue, a client's page, the trail
(the inventory's selection is ``app.registration.inventory``).

Nothing here changes state; state changes go through the service modules.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.audit import trail
from app.console import lookalikes
from app.extensions import db
from app.models import AuditEvent, Client, Publisher
from app.models.client import DENIED, PENDING
from app.support import untrusted_json

log = logging.getLogger(__name__)

PENDING_PAGE = 50  # registrations a page of the queue holds, in whole groups as far as they fit
AUDIT_PAGE = 100
TIMELINE = 50  # events on a client's page; the rest are in the audit trail's search


@dataclass
class PendingGroup:
    key: str
    verified: bool
    publisher: str | None
    software_id: str | None
    address: str | None
    host: str | None = None
    clients: list = field(default_factory=list)  # those on the page asked for
    # client_id -> how many other registrations presented the very same statement
    same_statement: dict = field(default_factory=dict)
    # client_id -> what the reviewer should know before approving (impersonation, look-alikes)
    warnings: dict = field(default_factory=dict)
    size: int = 0  # registrations in the whole group, on every page
    first: int = 1  # the number, within the group, of the first of ``clients``
    client_ids: list = field(default_factory=list)  # the whole group's, oldest first


@dataclass
class PendingPage:
    groups: list[PendingGroup]
    total: int  # pending registrations, on every page
    group_count: int  # groups, on every page
    page: int
    pages: int


def host_of(jwks_uri: str | None, client_uri, redirect_uri) -> str | None:
    """The host a registration says it comes from: its ``jwks_uri``, else its ``client_uri``,
    else its first redirect URI (lower-case, as URLs compare hosts)."""
    for value in (jwks_uri, client_uri, redirect_uri):
        if isinstance(value, str) and value:
            try:
                host = urlsplit(value).hostname
            except ValueError:
                continue
            if host:
                return host
    return None


def source_host(client: Client) -> str | None:
    """``host_of`` a client's registered URLs."""
    metadata = client.client_metadata or {}
    return host_of(client.jwks_uri, metadata.get("client_uri"), (metadata.get("redirect_uris") or [None])[0])


def _pending_keys() -> list[PendingGroup]:
    """Every pending registration's group, with its members' ids but not the registrations:
    one query of the few columns a group is made of, oldest first, grouped here, largest group
    first (then the oldest), so floods stand out.

    A verified statement groups by publisher and ``software_id`` (the publisher vouches for
    the software, wherever it registers from); a self-asserted registration by everything it
    presents about itself: its claimed ``software_id``, the host of its URLs (``host_of``)
    and the address it came from, so two unrelated agents behind one address are two groups.
    The host is parsed here, by the one URL parser, not in SQL: string functions differ
    between SQLite and PostgreSQL, and a group must not depend on the database."""
    metadata = Client.client_metadata
    rows = db.session.execute(
        select(Client.client_id, Client.publisher_id, Publisher.issuer, Client.software_id,
               Client.registered_from, Client.jwks_uri, metadata["client_uri"].as_string(),
               metadata[("redirect_uris", 0)].as_string(), Client.created_at)
        .outerjoin(Publisher, Publisher.id == Client.publisher_id)
        .where(Client.status == PENDING).order_by(Client.created_at, Client.client_id)).all()
    groups: dict[str, PendingGroup] = {}
    started: dict[str, datetime] = {}
    for client_id, publisher_id, issuer, software_id, address, jwks_uri, client_uri, redirect_uri, created in rows:
        if publisher_id:
            key = f"publisher:{publisher_id}:{software_id or ''}"
            group = groups.setdefault(key, PendingGroup(key, True, issuer, software_id, None))
        else:
            host = host_of(jwks_uri, client_uri, redirect_uri)
            key = f"self:{software_id or ''}:{host or ''}:{address or ''}"
            group = groups.setdefault(key, PendingGroup(key, False, None, software_id, address, host))
        started.setdefault(key, created)
        group.client_ids.append(client_id)
    for group in groups.values():
        group.size = len(group.client_ids)
    return sorted(groups.values(), key=lambda g: (-g.size, started[g.key], g.key))


def pending_page(page: int = 1, page_size: int | None = None) -> PendingPage:
    """One page of the pending queue, in whole groups: a page takes the next groups, largest
    first, while they fit in ``page_size`` registrations, and always at least one; a group
    larger than a page is cut in parts of ``page_size`` registrations, each part a page of its
    own but the last, which the next groups may join (``first`` and ``size`` say which part). Only that page's registrations are read in full,
    with their warnings and the other uses of their statements."""
    page_size = page_size or PENDING_PAGE
    chunks: list[list[tuple[PendingGroup, int, list[str]]]] = [[]]
    filled = 0
    for group in _pending_keys():
        for start in range(0, group.size, page_size):
            part = group.client_ids[start:start + page_size]
            if chunks[-1] and filled + len(part) > page_size:
                chunks.append([])
                filled = 0
            chunks[-1].append((group, start + 1, part))
            filled += len(part)
    pages = len(chunks)
    page = min(max(1, page), pages)
    on_page = chunks[page - 1]
    ids = [client_id for _, _, part in on_page for client_id in part]
    found = {c.client_id: c for c in db.session.execute(
        select(Client).where(Client.client_id.in_(ids)).options(selectinload(Client.publisher))).scalars()} \
        if ids else {}
    clients = [found[i] for i in ids if i in found]
    counts = _statement_uses(clients)
    warnings = pending_warnings(clients)
    shown = []
    for group, first, part in on_page:
        members = [found[i] for i in part if i in found]
        shown.append(replace(
            group, clients=members, first=first,
            same_statement={c.client_id: counts[c.statement_digest] - 1 for c in members
                            if counts.get(c.statement_digest, 0) > 1},
            warnings={c.client_id: warnings[c.client_id] for c in members if warnings.get(c.client_id)}))
    all_groups = {group.key for chunk in chunks for group, _, _ in chunk}
    return PendingPage(shown, sum(len(part) for chunk in chunks for _, _, part in chunk), len(all_groups),
                       page, pages)


def pending_groups() -> list[PendingGroup]:
    """Every group of the pending queue, every registration read in full (one page of all)."""
    return pending_page(page_size=sys.maxsize).groups


def pending_group(key: str) -> PendingGroup | None:
    """The group ``key`` of the pending queue as it is now, its members' ids oldest first
    (None if it has no pending registration any more)."""
    return next((group for group in _pending_keys() if group.key == key), None)


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
