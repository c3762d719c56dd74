"""Append-only, hash-chained audit events.

``record()`` adds an event to the caller's session; nothing is committed here,
so the event lands in the same transaction as the change it records, or not
at all. Sequence numbers and hashes are assigned at flush time under a lock
on the single ``audit_head`` row (``SELECT … FOR UPDATE`` on PostgreSQL; on
SQLite every write transaction is ``BEGIN IMMEDIATE``), which keeps the chain
linear with many processes and instances writing at once, while holding the
lock only from flush to commit.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import closing
from typing import Iterator

from flask import has_request_context, request
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .. import clock
from ..extensions import db
from ..models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_ID = 1


def record(event_type: str, actor: str, *, client_id: str | None = None, jti: str | None = None,
           task_id: str | None = None, decision: str | None = None, reason: str | None = None,
           data: dict | None = None, session: Session | None = None) -> AuditEvent:
    address = request.remote_addr if has_request_context() else None
    ev = AuditEvent(at=clock.now(), event_type=event_type, actor=actor, client_id=client_id,
                    jti=jti, task_id=task_id, decision=decision, reason=reason,
                    address=address, data=data or {})
    (session or db.session).add(ev)
    return ev


def event_hash(ev: AuditEvent, prev_hash: str) -> str:
    body = {
        "seq": ev.seq, "at": ev.at.isoformat(), "event_type": ev.event_type, "actor": ev.actor,
        "client_id": ev.client_id, "jti": ev.jti, "task_id": ev.task_id, "decision": ev.decision,
        "reason": ev.reason, "address": ev.address, "data": ev.data, "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@event.listens_for(Session, "before_flush")
def _chain_new_events(session: Session, flush_context, instances) -> None:
    new = [obj for obj in session.new if isinstance(obj, AuditEvent) and obj.seq is None]
    if not new:
        return
    with session.no_autoflush:
        head = session.execute(
            select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
        ).scalar_one_or_none()
        if head is None:  # first event ever; init created the row in normal operation
            head = AuditHead(id=HEAD_ID, seq=0, hash=GENESIS)
            session.add(head)
        for ev in sorted(new, key=lambda e: e.at):
            ev.seq = head.seq + 1
            ev.prev_hash = head.hash
            ev.hash = event_hash(ev, head.hash)
            head.seq, head.hash = ev.seq, ev.hash


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
    head = db.session.get(AuditHead, HEAD_ID)
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return count, count + 1, f"the trail ends at {count} but the head says {head.seq} (truncated)"
    return count, None, None


def export_jsonl(out, **filters) -> int:
    n = 0
    for ev in _stream(**filters):
        out.write(json.dumps(as_dict(ev), sort_keys=True) + "\n")
        n += 1
    return n


def as_dict(ev: AuditEvent) -> dict:
    return {
        "seq": ev.seq, "at": ev.at.isoformat(), "event_type": ev.event_type, "actor": ev.actor,
        "client_id": ev.client_id, "jti": ev.jti, "task_id": ev.task_id, "decision": ev.decision,
        "reason": ev.reason, "address": ev.address, "data": ev.data,
        "prev_hash": ev.prev_hash, "hash": ev.hash,
    }


def _stream(**filters) -> Iterator[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.seq)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(AuditEvent, name) == value)
    result = db.session.execute(query.execution_options(yield_per=500))
    try:
        yield from result.scalars()
    finally:
        result.close()
