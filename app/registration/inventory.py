"""The inventory of clients: one selection, in SQL over every client, of search, filters and
sort, for the console's inventory page, its "every matching client" action and the command
line's ``--matching`` (``app.registration.cli_bulk``), so a filter selects the same clients in
each. Read-only: state changes go through the lifecycle services.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Approval, Client, IssuedToken, Publisher
from app.models.client import ACTIVE, EXPIRED, SUSPENDED
from app.support import clock

SECRET_WARNING = timedelta(days=14)  # a secret expiring sooner needs rotating
INVENTORY_PAGE = 50

FLAGS = {
    "no_owner": "no owner",
    "expired": "expired",
    "review_overdue": "review overdue",
    "secret_expiring": "secret near expiry",
    "never_used": "never used",
    "unused": "unused",
}

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


def _selection(wanted: InventoryFilter, last_token, query, statuses: tuple[str, ...] | None = None):
    """``query`` joined to each client's approval and publisher, narrowed to what ``wanted``
    asks for (and to ``statuses``): the one selection of the inventory's page, of its "every
    matching client" and of the command line's ``--matching``."""
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
    if statuses is not None:
        conditions.append(Client.status.in_(statuses))
    return (query.outerjoin(Approval, Approval.id == Client.approval_id)
            .outerjoin(Publisher, Publisher.id == Client.publisher_id).where(*conditions))


def count_matching(wanted: InventoryFilter, statuses: tuple[str, ...] | None = None) -> int:
    """How many clients match ``wanted`` (and are in one of ``statuses``), over every page."""
    return db.session.scalar(_selection(wanted, _last_token(), select(func.count()).select_from(Client),
                                        statuses))


def matching_ids(wanted: InventoryFilter, statuses: tuple[str, ...] | None = None,
                 limit: int | None = None) -> list[str]:
    """The ids of the clients matching ``wanted`` (and in one of ``statuses``), over every page,
    in the inventory's order; at most ``limit``."""
    last_token = _last_token()
    query = (_selection(wanted, last_token, select(Client.client_id), statuses)
             .order_by(*_ordering(wanted.sort, last_token)))
    return list(db.session.scalars(query.limit(limit) if limit is not None else query))


def inventory(wanted: InventoryFilter, page_size: int = INVENTORY_PAGE) -> InventoryPage:
    """One page of the clients matching ``wanted``, and how many match in all: search,
    filters and sort are one SQL query over every client, so an old client is found as
    surely as a new one."""
    last_token = _last_token()
    total = count_matching(wanted)
    pages = max(1, -(-total // page_size))
    page = min(max(1, wanted.page), pages)
    query = (_selection(wanted, last_token, select(Client, last_token)).order_by(*_ordering(wanted.sort, last_token))
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
