"""A person's request for an agent that is still pending: who asked, why and when join the
registration, for whoever proofs it (the console's pending queue, ``ostiary registration show``);
and, for the person, what became of it (``my_requests``).

What became of a request is read from the records of the decision, not written beside them:
the approval (an ``Approval`` row with ``change == "approved"``, never changed in place) and the
denial (the ``client.denied`` audit event), each at or after the request. Both are written by
``lifecycle.approve``/``lifecycle.deny`` in the decision's own transaction, audited; a copy on the
request would only be a second record that could disagree with the first.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import AccessRequest, Approval, AuditEvent, Client
from app.models.client import ACTIVE, PENDING, might_be_id
from app.support import clock

WAITING, APPROVED, DENIED, CLOSED = "waiting", "approved", "denied", "closed"

MAX_REASON = 1000


class AccessRequestError(ValueError):
    """The request for access cannot be recorded; the message says why, for the person."""


def request_access(person, client_id: str, reason: str) -> AccessRequest:
    """A person asks for a pending agent: who, why, when joins its registration for whoever
    proofs it (one request per person and agent; asking again updates the reason)."""
    client = db.session.get(Client, client_id) if might_be_id(client_id) else None
    if client is None or client.status != PENDING:
        raise AccessRequestError("This agent is not waiting for approval.")
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise AccessRequestError(f"Say why you need this agent (at most {MAX_REASON} characters).")
    now = clock.now()
    found = db.session.execute(select(AccessRequest).where(
        AccessRequest.client_id == client_id, AccessRequest.person_id == person.id)).scalar_one_or_none()
    if found is None:
        found = AccessRequest(client_id=client_id, person_id=person.id, reason=reason, created_at=now)
        db.session.add(found)
    else:
        found.reason, found.created_at = reason, now
    audit.record("access.requested", f"person:{person.public_id}", client_id=client_id, data={"reason": reason})
    db.session.commit()
    return found


def access_requests(client_id: str) -> list[AccessRequest]:
    """The people who asked for a pending agent, newest first (for whoever proofs it)."""
    return list(db.session.execute(select(AccessRequest).where(AccessRequest.client_id == client_id)
                                   .order_by(AccessRequest.created_at.desc())).scalars())


@dataclass
class Outcome:
    """A person's request for access and what became of it.

    ``state``: ``waiting`` (the agent is pending: since the request, or again, after a change
    to its registration sent it back to review), ``approved`` or ``denied`` (``decided_at``:
    the latest such decision since the request), or ``closed`` (the agent left the queue with
    neither, retired say). ``can_connect``: approved, and active now (an approved agent may
    since have been suspended, expired or retired: ``client.status`` says which)."""
    request: AccessRequest
    client: Client
    state: str
    decided_at: datetime | None

    @property
    def can_connect(self) -> bool:
        return self.state == APPROVED and self.client.status == ACTIVE


def my_requests(person) -> list[Outcome]:
    """The requests for access ``person`` made, and only theirs, each with what became of it,
    newest first. Three reads, whatever the number of requests."""
    rows = list(db.session.execute(
        select(AccessRequest, Client).join(Client, Client.client_id == AccessRequest.client_id)
        .where(AccessRequest.person_id == person.id).order_by(AccessRequest.created_at.desc())))
    if not rows:
        return []
    ids = {request.client_id for request, _ in rows}
    approvals = _dates(select(Approval.client_id, Approval.approved_at)
                       .where(Approval.client_id.in_(ids), Approval.change == "approved"))
    denials = _dates(select(AuditEvent.client_id, AuditEvent.at)
                     .where(AuditEvent.client_id.in_(ids), AuditEvent.event_type == "client.denied"))
    return [_outcome(request, client, approvals.get(client.client_id, []), denials.get(client.client_id, []))
            for request, client in rows]


def _dates(query) -> dict[str, list[datetime]]:
    found: dict[str, list[datetime]] = {}
    for client_id, at in db.session.execute(query):
        found.setdefault(client_id, []).append(at)
    return found


def _outcome(request: AccessRequest, client: Client, approved: list[datetime], denied: list[datetime]) -> Outcome:
    if client.status == PENDING:
        return Outcome(request, client, WAITING, None)
    decisions = [(at, APPROVED) for at in approved if at >= request.created_at]
    decisions += [(at, DENIED) for at in denied if at >= request.created_at]
    if not decisions:
        return Outcome(request, client, CLOSED, None)
    at, state = max(decisions)
    return Outcome(request, client, state, at)
