"""Which clients may use the token endpoints right now (the shared contract, issues 4 and 5).

pending / suspended / expired -> ``unauthorized_client`` (the client is known and authenticated
but not allowed to get tokens; the description tells its operator why); unknown, denied,
retired -> ``invalid_client`` (there is no identity to issue to). An active client whose
approval has run out is moved to ``expired`` through the lifecycle service, then refused. An
active client whose review is overdue past ``REVIEW_GRACE_DAYS`` is refused too, from the
moment its grace ends, though only the sweep suspends it (``ostiary registration sweep``):
renewing it, which the refusal asks for, is then all it needs, and a refusal writes nothing
but its audit event.
"""
from __future__ import annotations

import logging
from datetime import datetime

from authlib.oauth2.rfc6749.errors import InvalidClientError, UnauthorizedClientError
from flask import current_app

from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, RETIRED, SUSPENDED
from app.registration.lifecycle import review_grace
from app.support import clock, inline

log = logging.getLogger(__name__)


def standing(status: str, approval_expires_at: datetime | None, review_at: datetime | None) -> str | None:
    """Why a client of this status, approval expiry and review date may not use its tokens
    now, in short (None: it may): active, with an approval that has not run out and a review
    not overdue past its grace period (``review_overdue``). What ``require_active`` lets
    through, without the contract's errors; introspection and token exchange apply it to the
    client of a presented token (so its tokens stop being active when its grace ends, as when
    its approval runs out), the client cache to the records it serves."""
    if status != ACTIVE:
        return f"client is {status}"
    now = clock.now()
    if approval_expires_at is None or approval_expires_at <= now:
        return "approval expired"
    if review_at is None or review_overdue(review_at, now):
        return "review overdue"
    return None


def review_overdue(review_at: datetime, now: datetime) -> bool:
    """Is a review due at ``review_at`` overdue past ``REVIEW_GRACE_DAYS``? The sweep's rule
    (``approvals.suspend_overdue_reviews``), read at request time."""
    return review_at + review_grace() <= now


def may_get_tokens(row) -> bool:
    """``standing`` of a ``ClientRecord``: may it get tokens now?"""
    approval = row.approval
    return standing(row.status, approval.expires_at if approval is not None else None,
                    approval.review_at if approval is not None else None) is None


def require_active(client) -> None:
    """Raise the contract's error unless ``client`` (an authenticated OAuthClient) may get tokens."""
    row = client.row
    if row.status == PENDING:
        raise UnauthorizedClientError(
            "the client is pending approval; an administrator must approve it before it gets tokens")
    if row.status == SUSPENDED:
        # The administrator's reason is an internal note: it stays in the console and the trail.
        raise UnauthorizedClientError("the client is suspended; its owner must ask an administrator "
                                      "to reactivate it")
    if row.status == EXPIRED:
        raise UnauthorizedClientError("the client's approval has expired; it must register again")
    if row.status in (DENIED, RETIRED):
        raise InvalidClientError(description=f"the client is {row.status}")
    if row.status != ACTIVE or row.approval is None:
        raise InvalidClientError(description="the client has no active approval")
    if row.approval.expires_at <= clock.now():
        _expire(row)
        raise UnauthorizedClientError(
            f"the client's approval expired at {row.approval.expires_at.isoformat()}; "
            "it must register again")
    if review_overdue(row.approval.review_at, clock.now()):
        grace = current_app.config["REVIEW_GRACE_DAYS"]
        raise UnauthorizedClientError(
            f"the client's review was due on {row.approval.review_at.date().isoformat()} and is overdue "
            f"past its {grace}-day grace period; its owner must ask an administrator to renew it")


def _expire(row) -> None:
    """Move the client to ``expired`` now rather than waiting for the periodic sweep: an ORM
    write, so off the event loop's thread when the request runs inline (``inline.blocking``)."""
    from app.registration.lifecycle import expire_due
    log.info("approval of %r has expired; expiring it at request time", row.client_id)
    inline.blocking(lambda: expire_due(actor="system", client_id=row.client_id))
