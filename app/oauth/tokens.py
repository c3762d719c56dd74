"""Issued tokens after issuance: are they active, and revoking them (with what came from them)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select, update

from app import audit
from app.db import dbapi
from app.extensions import db
from app.models import Approval, Client, IssuedToken, Task
from app.oauth.clients import ClientRecord, record_columns, record_of
from app.oauth.status import standing
from app.support import clock

log = logging.getLogger(__name__)


class TokenRecord(NamedTuple):
    """An issued token's row, with its client's standing: plain values."""
    jti: str
    client_id: str
    scope: str
    audience: list
    task_id: str | None
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    client_status: str
    client_tokens_not_before: datetime | None
    approval_expires_at: datetime | None
    approval_review_at: datetime | None


_TOKEN, _CLIENT, _APPROVAL = IssuedToken.__table__, Client.__table__, Approval.__table__
_N_TOKEN = 8  # the fields of TokenRecord read from the token's own row
_TOKEN_COLUMNS = [*(_TOKEN.c[name] for name in TokenRecord._fields[:_N_TOKEN]), _CLIENT.c.status,
                  _CLIENT.c.tokens_not_before, _APPROVAL.c.expires_at, _APPROVAL.c.review_at]
_TOKEN_FROM = (_TOKEN.join(_CLIENT, _CLIENT.c.client_id == _TOKEN.c.client_id)
               .outerjoin(_APPROVAL, _APPROVAL.c.id == _CLIENT.c.approval_id))
LOOKUP = select(*_TOKEN_COLUMNS).select_from(_TOKEN_FROM).where(_TOKEN.c.jti == bindparam("jti"))
# The same, with the caller's client record beside it: one row if the caller exists.
_CALLER, _CALLER_APPROVAL = _CLIENT.alias("caller"), _APPROVAL.alias("caller_approval")
LOOKUP_WITH_CALLER = (
    select(*_TOKEN_COLUMNS, *record_columns(_CALLER, _CALLER_APPROVAL))
    .select_from(_CALLER.outerjoin(_CALLER_APPROVAL, _CALLER_APPROVAL.c.id == _CALLER.c.approval_id)
                 .outerjoin(_TOKEN_FROM, _TOKEN.c.jti == bindparam("jti")))
    .where(_CALLER.c.client_id == bindparam("caller")))


def lookup(jti: str) -> TokenRecord | None:
    """The token's row and its client's standing: one indexed read on the driver, in autocommit
    (``app.db.dbapi``), as the client read of a token request. Introspection and token exchange
    run inline on the event loop: through the ORM, on SQLite, the read would begin with the
    write lock (``BEGIN IMMEDIATE``) and wait for it on the loop's own thread."""
    row = dbapi.fetch_one(LOOKUP, {"jti": jti})
    return TokenRecord(*row) if row is not None else None


def lookup_with_caller(jti: str | None, caller_id: str) -> tuple[TokenRecord | None, ClientRecord | None]:
    """``lookup(jti)`` (None for no token) and the caller's current client record, in the
    same read: a caller authenticated from the client cache is checked at no extra cost."""
    row = dbapi.fetch_one(LOOKUP_WITH_CALLER, {"jti": jti, "caller": caller_id})
    if row is None:
        return None, None
    n = len(TokenRecord._fields)
    return (TokenRecord(*row[:n]) if row[0] is not None else None), record_of(row[n:])


def inactive_reason(token: TokenRecord) -> str | None:
    """Why the token is not active (RFC 7662 §2.2), or None if it is: revoked, issued before its
    client last stopped being active (``Client.tokens_not_before``), expired, or its client's
    standing (``status.standing``)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.client_tokens_not_before is not None and token.issued_at <= token.client_tokens_not_before:
        return "revoked: issued before the client was suspended or sent back to review"
    if token.expires_at <= clock.now():
        return "expired"
    return standing(token.client_status, token.approval_expires_at, token.approval_review_at)


class PresentedToken(NamedTuple):
    """A token presented to this server that verified: its claims and, if this server issued
    it, its row. Introspection and revocation read it through the methods Authlib's endpoints
    call; token exchange also takes a workload JWT (no row), bound to the caller by a policy
    rule."""
    claims: dict
    row: TokenRecord | None = None  # ours; None for a workload JWT
    binding: str | None = None      # workload JWTs: the policy rule binding it to the caller

    @property
    def ours(self) -> bool:
        return self.row is not None

    @property
    def sub(self) -> str:
        return self.claims["sub"]

    @property
    def exp(self) -> int:
        return self.claims["exp"]

    @property
    def holder(self) -> str:
        """Whose token it is: the client it was issued to, or the workload's subject."""
        return self.row.client_id if self.ours else self.sub

    @property
    def scopes(self) -> list[str] | None:
        """Ours only, as are ``audiences`` and ``task``: a workload JWT carries no grant."""
        return self.row.scope.split() if self.ours else None

    @property
    def audiences(self) -> list[str] | None:
        return list(self.row.audience) if self.ours else None

    @property
    def task(self) -> dict | None:
        """The ``agent_task`` (RFC 9396) a task token was issued for."""
        return (self.claims.get("authorization_details") or [None])[0] if self.ours else None

    def is_expired(self) -> bool:
        return inactive_reason(self.row) == "expired"

    def is_revoked(self) -> bool:
        return inactive_reason(self.row) is not None

    def check_client(self, client) -> bool:
        return self.row.client_id == client.client_id


def descendants(jtis: list[str]) -> list[str]:
    """Every token exchanged, directly or through others, from the given ones."""
    found, frontier = [], list(jtis)
    while frontier:
        frontier = list(db.session.execute(
            select(IssuedToken.jti).where(IssuedToken.parent_jti.in_(frontier))).scalars())
        found.extend(frontier)
    return found


def revoke(jti: str, *, actor: str, reason: str | None = None) -> list[str]:
    """RFC 7009 §2.1: revoke a token and everything exchanged from it; one audit event.

    Returns the jtis newly revoked (empty if it already was)."""
    row = db.session.get(IssuedToken, jti)
    if row is None:
        return []
    revoked = _revoke_all([jti, *descendants([jti])])
    audit.record("token.revoked", actor, client_id=row.client_id, jti=jti, task_id=row.task_id,
                 reason=reason, data={"revoked": revoked})
    db.session.commit()
    return revoked


def revoke_many(jtis: list[str]) -> list[str]:
    """Revoke ``jtis`` and everything exchanged from them, in the caller's transaction (the
    caller audits and commits); returns the jtis newly revoked."""
    return _revoke_all([*jtis, *descendants(jtis)]) if jtis else []


def _revoke_all(jtis: list[str]) -> list[str]:
    now = clock.now()
    pending = list(db.session.execute(
        select(IssuedToken.jti).where(IssuedToken.jti.in_(jtis), IssuedToken.revoked_at.is_(None))
    ).scalars())
    if pending:
        db.session.execute(update(IssuedToken).where(IssuedToken.jti.in_(pending))
                           .values(revoked_at=now).execution_options(synchronize_session=False))
    return pending


class TaskError(ValueError):
    """The task cannot be ended; the message says why, for a person."""


def end_task(task_id: str, *, outcome: str, actor: str, client_id: str | None = None) -> list[str]:
    """End a task and revoke every token issued for it (and anything exchanged from those).

    ``client_id``: when the agent itself ends its task, the task must be its own.
    Returns the jtis revoked. Ending an ended task again is an error, so nobody is misled
    into thinking a second call did something."""
    if outcome not in ("done", "failed", "ended"):
        raise TaskError("outcome must be done or failed")
    task = db.session.get(Task, task_id, with_for_update=True) if task_id else None
    if task is None or (client_id is not None and task.client_id != client_id):
        raise TaskError(f"no task {task_id!r}" + (" of this client" if client_id else ""))
    if task.ended_at is not None:
        raise TaskError(f"task {task_id} already ended ({task.outcome}) at {task.ended_at.isoformat()}")
    task.ended_at, task.outcome = clock.now(), outcome
    jtis = list(db.session.execute(select(IssuedToken.jti).where(IssuedToken.task_id == task_id)).scalars())
    revoked = _revoke_all([*jtis, *descendants(jtis)])
    audit.record("task.ended", actor, client_id=task.client_id, task_id=task_id,
                 reason=outcome, data={"revoked": revoked})
    db.session.commit()
    return revoked
