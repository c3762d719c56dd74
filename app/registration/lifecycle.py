"""The approval lifecycle of a client: the life of an identity, from registration to retirement.

    pending --approve--> active --suspend--> suspended --reactivate--> active
    pending --deny--> denied;  active/suspended --expiry passes--> expired;  any --retire--> retired
    active --an update that needs a new review--> pending

Whenever a client stops being active its ``tokens_not_before`` moves to now: no token issued
before a suspension, a return to review, expiry or retirement is valid again, even once the
client is active again.

Each transition is one function here: it validates, changes the rows, records
the audit event in the same transaction and commits. The console, the CLI, the
RFC 7592 endpoint and the token endpoint all call these; nothing else writes a
client's status.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import and_, or_, select, update

from app import audit
from app.audit import trail
from app.extensions import db
from app.models import Approval, Client, IssuedToken
from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, RETIRED, SUSPENDED
from app.policy import scopes as catalogue
from app.support import clock, hashing
from app.support.protocol import CLIENT_SECRET_BASIC, CLIENT_SECRET_POST

log = logging.getLogger(__name__)

MAX_TOKEN_TTL_CEILING = 24 * 3600
SECRET_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST)


KEEP_REVIEW = object()  # for check_grant: the review date is not being set


class LifecycleError(ValueError):
    """A transition that is not allowed; the message says what is wrong, for a person."""


def get_client(client_id: str, *, lock: bool = False) -> Client:
    """The client; with ``lock``, its row locked for this transaction and read afresh (a copy
    already in the session would otherwise keep what it read before the lock)."""
    query = select(Client).where(Client.client_id == client_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    client = db.session.execute(query).scalar_one_or_none()
    if client is None:
        raise LifecycleError(f"no client {client_id!r}")
    return client


def approve(client_id: str, *, version: int, owner: str, purpose: str, scopes: list[str],
            audiences: list[str], max_token_ttl: int, expires_at: datetime, review_at: datetime,
            assurance_level: int, proofing_method: str, evidence: str | None, actor: str,
            serves: list[str] = (), sensitive_confirmed: bool = False) -> Approval:
    """pending -> active, with the approval record (who proofed it, how, what it may do).

    ``version`` is the version of the registration the approver reviewed: if the client has
    changed its metadata since, the approval is refused, naming what changed, so nothing is
    approved that nobody saw. ``serves``: the resource identifiers the client is the relying
    service of, which lets it introspect tokens addressed to them (RFC 7662 §4). A scope the
    catalogue marks sensitive is approved only with ``sensitive_confirmed``; the proofing
    needs an evidence reference when its method claims evidence or its level is at least
    EVIDENCE_REQUIRED_FROM_LEVEL (``check_proofing``)."""
    client = _in_status(client_id, (PENDING,), "approved")
    if version != client.version:
        changed = changes_since(client, version if isinstance(version, int) else 0)
        raise LifecycleError(
            f"the registration changed after version {version} was reviewed (it is now version "
            f"{client.version}; changed: {', '.join(changed) or 'its metadata'}); review it again")
    scopes, audiences = list(dict.fromkeys(scopes or [])), list(dict.fromkeys(audiences or []))
    serves = list(dict.fromkeys(serves or []))
    if not owner or not owner.strip() or len(owner) > 255:
        raise LifecycleError("an owner (a named person or team, at most 255 characters) is required")
    _required(purpose, "a purpose")
    check_grant(client, scopes=scopes, audiences=audiences, max_token_ttl=max_token_ttl,
                expires_at=expires_at, review_at=review_at)
    check_sensitive(scopes, sensitive_confirmed)
    evidence = check_proofing(client, scopes=scopes, assurance_level=assurance_level,
                              proofing_method=proofing_method, evidence=evidence)
    for resource in serves:
        _check_resource(resource, "resource server identifier")
    now = clock.now()
    approval = Approval(client_id=client.client_id, owner=owner.strip(), purpose=purpose.strip(),
                        scopes=scopes, audiences=audiences, serves=serves, max_token_ttl=int(max_token_ttl),
                        expires_at=expires_at, review_at=review_at, assurance_level=int(assurance_level),
                        proofing_method=proofing_method, evidence=evidence or None, proofed_by=actor,
                        approved_by=actor, approved_at=now)
    db.session.add(approval)
    db.session.flush()
    client.approval_id = approval.id
    _set_status(client, ACTIVE, None, now)
    client.pending_expires_at = client.approval_expired_at = None
    audit.record("client.approved", actor, client_id=client.client_id, decision="allow", data={
        "approval_id": approval.id, "version": client.version, "owner": approval.owner, "scopes": scopes,
        "audiences": audiences, "serves": serves, "signed_fields": client.signed_fields or [],
        "max_token_ttl": approval.max_token_ttl, "expires_at": expires_at.isoformat(),
        "review_at": review_at.isoformat(), "assurance_level": approval.assurance_level,
        "proofing_method": proofing_method, "evidence": approval.evidence})
    db.session.commit()
    log.info("client %r approved by %r", client.client_id, actor)
    return approval


def changes_since(client: Client, version: int) -> list[str]:
    """The metadata names changed after ``version`` of the registration, from the audit trail."""
    changed: set[str] = set()
    query = trail.matching(client_id=client.client_id, event_type="client.updated")
    for event in db.session.execute(query).scalars():
        if (event.data or {}).get("version", 0) > version:
            changed.update(event.data.get("changed") or [])
    return sorted(changed)


def deny(client_id: str, *, reason: str, actor: str) -> Client:
    """pending -> denied. The reason is kept for the record and shown to the client on RFC 7592 read."""
    reason = _required(reason, "a reason")
    client = _in_status(client_id, (PENDING,), "denied")
    _set_status(client, DENIED, reason)
    client.pending_expires_at = None
    audit.record("client.denied", actor, client_id=client_id, decision="deny", reason=reason)
    db.session.commit()
    return client


def suspend(client_id: str, *, reason: str, actor: str) -> Client:
    """active -> suspended: no tokens until an administrator reactivates it."""
    reason = _required(reason, "a reason")
    client = _in_status(client_id, (ACTIVE,), "suspended")
    _set_status(client, SUSPENDED, reason)
    audit.record("client.suspended", actor, client_id=client_id, reason=reason)
    db.session.commit()
    return client


def reactivate(client_id: str, *, actor: str) -> Client:
    """suspended -> active, only while the approval it had is still in force and its review is
    not overdue past the grace period (the sweep would suspend it again: renew it first)."""
    client = _in_status(client_id, (SUSPENDED,), "reactivated")
    if client.approval is None or client.approval.expires_at <= clock.now():
        raise LifecycleError(f"client {client_id!r} cannot be reactivated: its approval has expired")
    if client.approval.review_at + review_grace() <= clock.now():
        raise LifecycleError(f"client {client_id!r} cannot be reactivated: its review was due on "
                             f"{client.approval.review_at.date()}; renew the approval first")
    _set_status(client, ACTIVE, None)
    audit.record("client.reactivated", actor, client_id=client_id)
    db.session.commit()
    return client


def retire(client_id: str, *, actor: str, reason: str | None = None) -> Client:
    """any -> retired, for good: every token it holds is revoked in the same transaction."""
    client = get_client(client_id, lock=True)
    if client.status == RETIRED:
        raise LifecycleError(f"client {client_id!r} is already retired")
    now = clock.now()
    previous = client.status
    _set_status(client, RETIRED, reason, now)
    client.pending_expires_at = None
    revoked = db.session.execute(
        update(IssuedToken).where(IssuedToken.client_id == client_id, IssuedToken.revoked_at.is_(None))
        .values(revoked_at=now)).rowcount
    audit.record("client.retired", actor, client_id=client_id, reason=reason,
                 data={"from": previous, "tokens_revoked": revoked})
    db.session.commit()
    return client


def rotate_secret(client_id: str, *, actor: str) -> tuple[str, datetime, datetime | None]:
    """A new client secret (shown once, stored as a hash). The one it replaces keeps working
    for SECRET_ROTATION_GRACE seconds (never past its own expiry), so the client can be given
    the new one without an outage; returns the new secret, its expiry, and when the previous
    one stops working (None: at once). A secret already in its grace period stops at once:
    only one previous secret is ever accepted."""
    client = get_client(client_id, lock=True)
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise LifecycleError(f"client {client_id!r} authenticates with "
                             f"{client.token_endpoint_auth_method}, not a client secret")
    if client.status in (DENIED, RETIRED, EXPIRED):
        raise LifecycleError(f"client {client_id!r} is {client.status}; its secret cannot be rotated")
    now = clock.now()
    previous_hash, previous_expiry = client.secret_hash, client.secret_expires_at
    secret, expires_at = new_secret(client)
    grace = int(current_app.config["SECRET_ROTATION_GRACE"])
    until = now + timedelta(seconds=grace) if grace and previous_hash else None
    if until is not None and previous_expiry is not None:
        until = min(until, previous_expiry)
    if until is not None and until <= now:
        until = None
    client.previous_secret_hash = previous_hash if until else None
    client.previous_secret_until = until
    client.updated_at = now
    audit.record("client.secret_rotated", actor, client_id=client_id,
                 data={"expires_at": expires_at.isoformat(),
                       "previous_valid_until": until.isoformat() if until else None})
    db.session.commit()
    return secret, expires_at, until


def back_to_review(client: Client, reason: str, now: datetime, *, held: bool = False) -> None:
    """active -> pending (no commit: for the RFC 7592 update, which audits the change): the
    client asked for more than its approval, or changed how it is recognised.

    ``held``: a suspended or expired client whose metadata document changed
    (``app.registration.documents``). Its tokens already stopped when it stopped being active
    (``tokens_not_before``); its old approval stays on record until a new one replaces it. It
    gets no purge deadline: a person stopped it, so a person decides, and the sweep must not
    delete it (it would then be seen afresh, and a trusted publisher's rule could approve it)."""
    _set_status(client, PENDING, reason, now)
    client.pending_expires_at = None if held else now + timedelta(seconds=current_app.config["PENDING_TTL"])


def new_secret(client: Client) -> tuple[str, datetime]:
    """Set a fresh secret on ``client`` (no commit: for register() and rotate_secret())."""
    secret = hashing.generate()
    expires_at = clock.in_(current_app.config["CLIENT_SECRET_TTL"])
    client.secret_hash, client.secret_expires_at = hashing.hash_secret(secret), expires_at
    client.previous_secret_hash = client.previous_secret_until = None
    return secret, expires_at


def expire_due(*, actor: str = "system", client_id: str | None = None) -> int:
    """active clients whose approval has run out -> expired. Returns how many clients it found
    expired, suspended ones included.

    A suspended client keeps its status and its reason (the suspension is the stronger fact,
    and an administrator's reason must not be overwritten by a sweep): its
    ``approval_expired_at`` records the expiry beside it, audited once. Retired and denied
    clients are never touched. The token endpoint calls this with ``client_id`` for the one
    client it is looking at (expiry is enforced at request time, not by a cron job alone);
    ``ostiary registration sweep`` calls it for all.
    """
    now = clock.now()
    query = (select(Client).join(Approval, Approval.id == Client.approval_id)
             .where(Approval.expires_at <= now,
                    or_(Client.status == ACTIVE,
                        and_(Client.status == SUSPENDED, Client.approval_expired_at.is_(None))))
             .with_for_update(of=Client))
    if client_id is not None:
        query = query.where(Client.client_id == client_id)
    clients = db.session.execute(query).scalars().all()
    for client in clients:
        kept = client.status if client.status != ACTIVE else None
        if kept is None:
            _set_status(client, EXPIRED, f"approval expired on {client.approval.expires_at.isoformat()}", now)
        client.approval_expired_at = now
        audit.record("client.expired", actor, client_id=client.client_id,
                     data={"approval_id": client.approval_id, "status_kept": kept,
                           "expires_at": client.approval.expires_at.isoformat()})
    db.session.commit()
    return len(clients)


def purge_stale_pending(*, actor: str = "system") -> int:
    """Delete pending registrations nobody approved within PENDING_TTL, each with an audit event."""
    now = clock.now()
    stale = db.session.execute(
        select(Client).where(Client.status == PENDING, Client.pending_expires_at <= now)
        .with_for_update()).scalars().all()
    for client in stale:
        audit.record("client.purged", actor, client_id=client.client_id, reason="pending approval expired",
                     data={"client_name": client.client_name, "registered_from": client.registered_from,
                           "software_id": client.software_id,
                           "created_at": client.created_at.isoformat()})
        db.session.delete(client)
    db.session.commit()
    return len(stale)


def review_grace() -> timedelta:
    return timedelta(days=int(current_app.config["REVIEW_GRACE_DAYS"]))


def check_sensitive(scopes, confirmed: bool) -> None:
    """Scopes the catalogue marks sensitive are approved only when the approver confirmed them."""
    if (sensitive := catalogue.current().sensitive(scopes)) and not confirmed:
        raise LifecycleError(f"scopes {', '.join(sensitive)} are sensitive: confirm that you mean to "
                             "approve them")


def check_proofing(client: Client, *, scopes, assurance_level, proofing_method, evidence) -> str | None:
    """The proofing an approval records: a method of the catalogue, at a level that covers
    ``scopes``, with an evidence reference when the method claims evidence or the level is
    at least EVIDENCE_REQUIRED_FROM_LEVEL. Returns the evidence, trimmed (None if empty)."""
    cat = catalogue.current()
    if assurance_level not in cat.levels:
        raise LifecycleError(f"assurance level must be one of {', '.join(map(str, cat.levels))}")
    if above := cat.above(scopes, assurance_level):
        needed = max(cat.needed_level(s) for s in above)
        raise LifecycleError(f"scopes {', '.join(above)} need assurance level {needed}; "
                             f"raise the proofing before approving them (this approval is at {assurance_level})")
    if not proofing_method:
        raise LifecycleError("a proofing method is required: say how the client was proofed")
    if proofing_method not in cat.proofing_methods:
        raise LifecycleError(f"proofing method must be one of {', '.join(cat.proofing_methods)}")
    if proofing_method == "software_statement":
        if client.publisher is None:
            raise LifecycleError("the client came without a verified software statement")
        if assurance_level > client.publisher.assurance_level:
            raise LifecycleError(f"a statement from {client.publisher.issuer} carries assurance level "
                                 f"{client.publisher.assurance_level} at most")
    evidence = evidence.strip() if isinstance(evidence, str) else None
    if evidence and len(evidence) > 500:
        raise LifecycleError("the evidence reference is too long (500 characters at most)")
    if not evidence:
        threshold = int(current_app.config["EVIDENCE_REQUIRED_FROM_LEVEL"])
        if proofing_method in cat.evidence_methods:
            raise LifecycleError(f"proofing by {proofing_method.replace('_', ' ')} claims evidence: "
                                 "give the evidence reference (ticket, document, meeting)")
        if threshold and assurance_level >= threshold:
            raise LifecycleError(f"an approval at assurance level {assurance_level} needs an evidence "
                                 f"reference whatever the proofing method (from level {threshold} on)")
    return evidence or None


def _in_status(client_id: str, allowed: tuple[str, ...], verb: str) -> Client:
    client = get_client(client_id, lock=True)
    if client.status not in allowed:
        raise LifecycleError(f"client {client_id!r} is {client.status}; only a "
                             f"{' or '.join(allowed)} client can be {verb}")
    return client


def _set_status(client: Client, status: str, reason: str | None, now: datetime | None = None) -> None:
    now = now or clock.now()
    if client.status == ACTIVE and status != ACTIVE:
        client.tokens_not_before = now
    client.status, client.status_reason = status, reason
    client.updated_at = now


def _required(value: str | None, what: str) -> str:
    if not value or not value.strip():
        raise LifecycleError(f"{what} is required")
    if len(value) > 2000:
        raise LifecycleError(f"{what} is too long (2000 characters at most)")
    return value.strip()


def _check_resource(value, what: str) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if not parts or not parts.scheme or not parts.netloc or parts.fragment:
        raise LifecycleError(f"{what} {value!r} is not an absolute URI without a fragment (RFC 8707 §2)")


def check_grant(client: Client, *, scopes, audiences, max_token_ttl, expires_at, review_at) -> None:
    """What an approval lets the client do: requested, catalogued scopes; absolute audiences;
    a token lifetime within the ceiling; an expiry within three years and a review before it."""
    cat = catalogue.current()
    if not scopes:
        raise LifecycleError("at least one scope must be approved")
    bad = [s for s in scopes if not isinstance(s, str) or not catalogue.SCOPE_TOKEN.match(s)]
    if bad:
        raise LifecycleError(f"not valid scope names: {', '.join(map(repr, bad))}")
    if unknown := cat.unknown(scopes):
        raise LifecycleError(f"scopes not in the catalogue: {', '.join(unknown)}")
    requested = set((client.client_metadata or {}).get("scope", "").split())
    if requested and (extra := [s for s in scopes if s not in requested]):
        raise LifecycleError(f"scopes the client did not request: {', '.join(extra)} "
                             f"(it requested {', '.join(sorted(requested))})")
    if not audiences:
        raise LifecycleError("at least one audience (resource URI) must be approved")
    for aud in audiences:
        _check_resource(aud, "audience")
    if not isinstance(max_token_ttl, int) or not 1 <= max_token_ttl <= MAX_TOKEN_TTL_CEILING:
        raise LifecycleError(f"max token lifetime must be 1 to {MAX_TOKEN_TTL_CEILING} seconds")
    now = clock.now()
    if expires_at is None or expires_at.tzinfo is None or expires_at <= now:
        raise LifecycleError("the credential expiry date must be in the future")
    if review_at is not KEEP_REVIEW and (
            review_at is None or review_at.tzinfo is None or not now < review_at <= expires_at):
        raise LifecycleError("the review date must be in the future and not after the expiry date")
    if expires_at - now > timedelta(days=3 * 366):
        raise LifecycleError("the credential expiry date must be within three years")
