"""Which clients may use the token endpoints right now (the shared contract, issues 4 and 5).

pending / suspended / expired -> ``unauthorized_client`` (the client is known and authenticated
but not allowed to get tokens; the description tells its operator why); unknown, denied,
retired -> ``invalid_client`` (there is no identity to issue to). An active client whose
approval has run out is moved to ``expired`` through the lifecycle service, then refused.
"""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749.errors import InvalidClientError, UnauthorizedClientError

from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, RETIRED, SUSPENDED
from app.support import clock, inline

log = logging.getLogger(__name__)


def standing(status: str, approval_expires_at) -> str | None:
    """Why a client of this status and approval expiry may not use its tokens now, in short
    (None: it may): active, with an approval that has not run out. What ``require_active``
    lets through, without the contract's errors; introspection and token exchange apply it to
    the client of a presented token, the client cache to the records it serves."""
    if status != ACTIVE:
        return f"client is {status}"
    if approval_expires_at is None or approval_expires_at <= clock.now():
        return "approval expired"
    return None


def may_get_tokens(row) -> bool:
    """``standing`` of a ``ClientRecord``: may it get tokens now?"""
    return standing(row.status, row.approval.expires_at if row.approval is not None else None) is None


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


def _expire(row) -> None:
    """Move the client to ``expired`` now rather than waiting for the periodic sweep: an ORM
    write, so off the event loop's thread when the request runs inline (``inline.blocking``)."""
    from app.registration.lifecycle import expire_due
    log.info("approval of %r has expired; expiring it at request time", row.client_id)
    inline.blocking(lambda: expire_due(actor="system", client_id=row.client_id))
