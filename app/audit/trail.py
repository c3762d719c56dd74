"""Append-only, hash-chained audit events.

``record()`` adds an event to the session's transaction; nothing is committed here, so the
event lands in the same transaction as the change it records, or not at all. When that
transaction commits, its events are written last (``append_locked()``, which the token
requests' group commit, ``app.oauth.group_commit``, also uses): everything else is flushed,
then the single ``audit_head`` row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; on
SQLite every write transaction is ``BEGIN IMMEDIATE``), the events get their sequence
numbers and hashes and are inserted, and the head moves. That keeps the chain linear with
many processes and instances writing at once, while the lock is held only for the events'
own statements and the commit.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import closing
from typing import Iterator

from flask import g, has_app_context, has_request_context, request
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from .. import clock
from ..extensions import db
from ..models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_ID = 1
HEAD = AuditHead.__table__
# Built once: constructing them per request cost as much as running them.
LOCK_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID).with_for_update()
MOVE_HEAD = update(HEAD).where(HEAD.c.id == HEAD_ID).values(seq=bindparam("to_seq"),
                                                            hash=bindparam("to_hash"))
EVENT = AuditEvent.__table__
INSERT_EVENT = insert(EVENT)
RECORDED = "ostiary.audit.recorded"  # session.info key: values() dicts awaiting the commit
HASHED = ("seq", "at", "event_type", "actor", "client_id", "jti", "task_id", "decision", "reason",
          "address", "data")


def record(event_type: str, actor: str, *, client_id: str | None = None, jti: str | None = None,
           task_id: str | None = None, decision: str | None = None, reason: str | None = None,
           data: dict | None = None) -> None:
    """Add an event to the session's transaction (no commit): it is chained and written when
    the transaction commits (``_append_recorded``), or dropped with it.

    Values may come from a request that was refused (an unknown ``client_id``
    someone sent), so they are made storable: an audit write must never turn a
    refusal into a 500.
    """
    session = db.session()
    if not session.in_transaction():
        session.begin()  # (no connection yet) so that a rollback or close ends it, and drops the event
    session.info.setdefault(RECORDED, []).append(values(
        event_type, actor, client_id=client_id, jti=jti, task_id=task_id, decision=decision,
        reason=reason, data=data))


def values(event_type: str, actor: str, *, client_id: str | None = None, jti: str | None = None,
           task_id: str | None = None, decision: str | None = None, reason: str | None = None,
           data: dict | None = None) -> dict:
    """An event's column values, made storable, before it is chained."""
    if has_request_context():
        address = request.remote_addr
    else:  # the machine endpoints run in an app context only (app.oauth.front)
        address = g.get("remote_addr") if has_app_context() else None
    fields = {"event_type": event_type, "actor": actor, "client_id": client_id, "jti": jti,
              "task_id": task_id, "decision": decision, "reason": reason, "address": address}
    row = {name: _storable(name, value) for name, value in fields.items()}
    row.update(at=clock.now(), data=data or {})
    return row


_LIMITS = {column.name: getattr(column.type, "length", None) for column in AuditEvent.__table__.c}


def _storable(name: str, value: str | None) -> str | None:
    """PostgreSQL text holds no NUL; bounded columns are cut, marked with an ellipsis."""
    if value is None:
        return None
    value = str(value).replace("\x00", "\ufffd")
    limit = _LIMITS[name]
    if limit and len(value) > limit:
        value = value[:limit - 1] + "\u2026"
    return value


def event_hash(ev: AuditEvent, prev_hash: str) -> str:
    return _digest({name: getattr(ev, name) for name in HASHED}, prev_hash)


def _digest(values: dict, prev_hash: str) -> str:
    body = {name: values[name] for name in HASHED}
    body["at"], body["prev_hash"] = values["at"].isoformat(), prev_hash
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@event.listens_for(Session, "before_commit")
def _append_recorded(session: Session) -> None:
    """Write the transaction's recorded events last, just before it commits: everything else
    is flushed first, so the head's lock is held for the events' own statements and the
    commit, not for the change they record."""
    events = session.info.pop(RECORDED, None)
    if not events:
        return
    session.flush()
    connection = session.connection()
    head = lock_head(connection)
    if head is None:  # first event ever; `ostiary init` creates the row in normal operation
        connection.execute(insert(HEAD).values(id=HEAD_ID, seq=0, hash=GENESIS))
        head = (0, GENESIS)
    append_locked(connection, head, events)


@event.listens_for(Session, "after_transaction_end")
def _drop_recorded(session: Session, transaction) -> None:
    """Events recorded in a transaction that rolled back go with it."""
    if transaction.parent is None:
        session.info.pop(RECORDED, None)


def lock_head(connection) -> tuple[int, str] | None:
    """(seq, hash) of the chain's last event, locked until the transaction ends."""
    row = connection.execute(LOCK_HEAD).first()
    return tuple(row) if row is not None else None


def append_locked(connection, head: tuple[int, str], events: list[dict]) -> None:
    """Chain ``events`` (``values()`` dicts, in order) after ``head``, which the caller locked
    with ``lock_head()`` in this transaction, INSERT them and move the head: no commit."""
    if events:
        moved = _link(head, events)
        connection.execute(INSERT_EVENT, events)
        connection.execute(MOVE_HEAD, moved)


def _link(head: tuple[int, str], events: list[dict]) -> dict:
    seq, prev = head
    for row in events:
        seq += 1
        row["seq"] = seq
        row["prev_hash"], row["hash"] = prev, _digest(row, prev)
        prev = row["hash"]
    return {"to_seq": seq, "to_hash": prev}


def verify() -> tuple[int, int | None, str | None]:
    """Walk the whole chain. Returns (events checked, first broken seq or None, why)."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    with closing(_stream()) as events:
        for ev in events:
            if ev.seq != expected_seq:
                return count, expected_seq, f"event {expected_seq} is missing (next is {ev.seq})"
            if ev.prev_hash != prev_hash:
                return count, ev.seq, "prev_hash does not match the preceding event"
            if event_hash(ev, prev_hash) != ev.hash:
                return count, ev.seq, "content does not match its hash (edited)"
            prev_hash, expected_seq, count = ev.hash, expected_seq + 1, count + 1
    head = head_row()
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return count, count + 1, f"the trail ends at {count} but the head says {head.seq} (truncated)"
    return count, None, None


def head_row():
    """(seq, hash) of the last event as the head row records it, or None before the first."""
    return db.session.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID)).first()


def matching(*, client_id=None, actor=None, event_type=None, since=None, until=None,
             newest_first=False):
    """Events matching the filters (equalities; ``since`` inclusive, ``until`` exclusive),
    in chain order: the one query behind the CLI export and the console's search and export."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc() if newest_first else AuditEvent.seq)
    for column, value in ((AuditEvent.client_id, client_id), (AuditEvent.actor, actor),
                          (AuditEvent.event_type, event_type)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


def export_lines(**filters) -> Iterator[str]:
    """Matching events as JSON Lines, oldest first, each with its hashes."""
    for ev in _stream(matching(**filters)):
        yield json.dumps(as_dict(ev), sort_keys=True) + "\n"


def export_jsonl(out, **filters) -> int:
    """Write ``export_lines(**filters)`` to ``out``; returns how many events."""
    n = 0
    for line in export_lines(**filters):
        out.write(line)
        n += 1
    return n


def as_dict(ev: AuditEvent) -> dict:
    """The event as exported: its hashed fields, then the links of the chain."""
    return {**{name: getattr(ev, name) for name in HASHED}, "at": ev.at.isoformat(),
            "prev_hash": ev.prev_hash, "hash": ev.hash}


def _stream(query=None) -> Iterator[AuditEvent]:
    """Events in batches (a server-side cursor on PostgreSQL), closed however the caller stops."""
    result = db.session.execute((query if query is not None else matching())
                                .execution_options(yield_per=500))
    try:
        yield from result.scalars()
    finally:
        result.close()
