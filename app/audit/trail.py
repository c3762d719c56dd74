"""Append-only audit events, sealed into a hash chain afterwards.

``record()`` adds an event to the session's transaction; nothing is committed here, so the
event lands in the same transaction as the change it records, or not at all. When that
transaction commits, its events are inserted last (``_append_recorded``), each with an ``id``
the database assigns and nothing else to compute: no lock is shared by the writers of
different transactions, processes or instances. The sequencer (``app.audit.sequencer``)
then seals them, oldest first, into the chain that ``verify()`` walks: ``seq``, ``prev_hash``
and ``hash``, and the head row that says where the chain ends.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import closing
from typing import Iterator

from flask import g, has_app_context, has_request_context, request
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import AuditEvent, AuditHead
from app.support import clock

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_ID = 1
HEAD = AuditHead.__table__
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
    return digest({name: getattr(ev, name) for name in HASHED}, prev_hash)


def digest(values: dict, prev_hash: str) -> str:
    """An event's hash: SHA-256 of its hashed fields and the previous event's hash, as
    canonical JSON (the sequencer's, when it seals; ``verify``'s, when it checks)."""
    body = {name: values[name] for name in HASHED}
    body["at"], body["prev_hash"] = values["at"].isoformat(), prev_hash
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@event.listens_for(Session, "before_commit")
def _append_recorded(session: Session) -> None:
    """Insert the transaction's recorded events last, just before it commits."""
    events = session.info.pop(RECORDED, None)
    if events:
        session.flush()
        append(session.connection(), events)


def append(connection, events: list[dict]) -> None:
    """INSERT ``events`` (``values()`` dicts, in order) in the connection's transaction: what
    ``record()`` does at its session's commit, for the token requests' group commit
    (``app.oauth.group_commit``), which writes on a driver connection (``app.db.dbapi``)."""
    if events:
        connection.execute(INSERT_EVENT, events)


@event.listens_for(Session, "after_transaction_end")
def _drop_recorded(session: Session, transaction) -> None:
    """Events recorded in a transaction that rolled back go with it."""
    if transaction.parent is None:
        session.info.pop(RECORDED, None)


def verify(checkpoint: dict | None = None) -> tuple[int, int | None, str | None]:
    """Walk the sealed chain, and if given a checkpoint (its verified ``seq`` and ``hash``),
    check that the chain still holds what the checkpoint saw. Returns (events checked, first
    broken seq or None, why). Events not yet sealed are not part of it (``unsealed()``)."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    at = checkpoint["seq"] if checkpoint else None
    sealed = select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)
    with closing(_stream(sealed)) as events:
        for ev in events:
            if ev.seq != expected_seq:
                return count, expected_seq, f"event {expected_seq} is missing (next is {ev.seq})"
            if ev.prev_hash != prev_hash:
                return count, ev.seq, "prev_hash does not match the preceding event"
            if event_hash(ev, prev_hash) != ev.hash:
                return count, ev.seq, "content does not match its hash (edited)"
            if ev.seq == at and ev.hash != checkpoint["hash"]:
                return count, ev.seq, (f"the chain is not the one checkpoint {at} signed: the trail up to "
                                       "it was rewritten")
            prev_hash, expected_seq, count = ev.hash, expected_seq + 1, count + 1
    if at is not None and count < at:
        return count, count + 1, f"the trail ends at {count} but checkpoint {at} signed more (truncated)"
    head = head_row()
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return count, count + 1, f"the trail ends at {count} but the head says {head.seq} (truncated)"
    return count, None, None


def unsealed() -> tuple[int, object]:
    """(how many events wait for the sequencer, when the oldest of them happened or None)."""
    row = db.session.execute(select(func.count(), func.min(AuditEvent.at))
                             .where(AuditEvent.seq.is_(None))).one()
    return row[0], row[1]


def head_row():
    """(seq, hash) of the last event as the head row records it, or None before the first."""
    return db.session.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID)).first()


def matching(*, client_id=None, actor=None, event_type=None, since=None, until=None,
             newest_first=False):
    """Events matching the filters (equalities; ``since`` inclusive, ``until`` exclusive), in
    the order they were written (which is the chain's, but for events of transactions that
    committed at the same moment): the one query behind the CLI export and the console's search
    and export."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc() if newest_first else AuditEvent.id)
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
    """The event as exported: its hashed fields, then the links of the chain (None until sealed)."""
    return {**{name: getattr(ev, name) for name in HASHED}, "at": ev.at.isoformat(),
            "prev_hash": ev.prev_hash, "hash": ev.hash}


def _stream(query) -> Iterator[AuditEvent]:
    """Events in batches (a server-side cursor on PostgreSQL), closed however the caller stops."""
    result = db.session.execute(query.execution_options(yield_per=500))
    try:
        yield from result.scalars()
    finally:
        result.close()
