"""A person's request for an agent that is still pending: who asked, why and when join the
registration, for whoever proofs it (the console's pending queue, ``ostiary registration show``)."""
from __future__ import annotations

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import AccessRequest, Client
from app.models.client import PENDING
from app.support import clock

MAX_REASON = 1000


class AccessRequestError(ValueError):
    """The request for access cannot be recorded; the message says why, for the person."""


def request_access(person, client_id: str, reason: str) -> AccessRequest:
    """A person asks for a pending agent: who, why, when joins its registration for whoever
    proofs it (one request per person and agent; asking again updates the reason)."""
    client = db.session.get(Client, client_id) if client_id and len(client_id) <= 64 else None
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
