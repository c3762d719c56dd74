"""The life of an approval after it is given: the review queue, renewal, edits, and the
sweep that suspends a client whose review is overdue past its grace period.

An approval is never changed in place: a renewal or an edit writes a new ``Approval`` that
names the one it replaces (``supersedes_id``) and says how it came to be (``change``), so
the record of who proofed what, and when, stays whole. Each function validates, changes,
audits (with what was before and what is after) and commits, like ``lifecycle``'s.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Approval, Client
from app.models.client import ACTIVE, SUSPENDED
from app.registration.lifecycle import (
    KEEP_REVIEW,
    LifecycleError,
    _check_resource,
    _in_status,
    _set_status,
    check_grant,
    check_proofing,
    check_sensitive,
    review_grace,
)
from app.support import clock

log = logging.getLogger(__name__)

RENEWED, NARROWED, WIDENED = "renewed", "narrowed", "widened"
REVIEW_OVERDUE = "review overdue"  # how the sweep's suspension reason starts


def review_window() -> timedelta:
    return timedelta(days=int(current_app.config["REVIEW_WINDOW_DAYS"]))


def reviews_due(now: datetime | None = None) -> list[Client]:
    """Active and suspended clients whose review date is past or within REVIEW_WINDOW_DAYS,
    the newest due first (the latest review date first)."""
    now = now or clock.now()
    query = (select(Client).join(Approval, Approval.id == Client.approval_id)
             .where(Client.status.in_((ACTIVE, SUSPENDED)), Approval.review_at <= now + review_window())
             .order_by(Approval.review_at.desc(), Client.client_id))
    return list(db.session.execute(query).scalars())


def renew(client_id: str, *, proofing_method: str, evidence: str | None, assurance_level: int,
          review_at: datetime, actor: str, expires_at: datetime | None = None) -> Approval:
    """The review of an active or suspended client: who attested, when, and with what proofing
    are recorded again, and the next review date is set (the expiry too, if given). The
    scopes, audiences and lifetimes stay as they were. The status is not changed: a client
    the sweep suspended is reactivated by an administrator, once renewed."""
    client = _in_status(client_id, (ACTIVE, SUSPENDED), "renewed")
    old, now = client.approval, clock.now()
    if old is None or old.expires_at <= now:
        raise LifecycleError(f"client {client_id!r} cannot be renewed: its approval has expired")
    expires_at = expires_at or old.expires_at
    check_grant(client, scopes=old.scopes, audiences=old.audiences, max_token_ttl=old.max_token_ttl,
                expires_at=expires_at, review_at=review_at)
    evidence = check_proofing(client, scopes=old.scopes, assurance_level=assurance_level,
                              proofing_method=proofing_method, evidence=evidence)
    new = _replace(client, old, RENEWED, actor, now, expires_at=expires_at, review_at=review_at,
                   assurance_level=int(assurance_level), proofing_method=proofing_method,
                   evidence=evidence, proofed_by=actor)
    if client.status == ACTIVE and old.review_at + review_grace() <= now:
        # Its tokens stopped being valid when the grace period ended (``app.oauth.status``);
        # the renewal does not bring them back, as a reactivation would not.
        client.tokens_not_before = now
    audit.record("client.renewed", actor, client_id=client_id, data={
        "approval_id": new.id, "supersedes": old.id,
        "before": _proofing(old), "after": _proofing(new)})
    db.session.commit()
    log.info("approval of %r renewed by %r", client_id, actor)
    return new


def edit(client_id: str, *, actor: str, scopes: list[str] | None = None,
         audiences: list[str] | None = None, max_token_ttl: int | None = None,
         expires_at: datetime | None = None, serves: list[str] | None = None,
         proofing_method: str | None = None, evidence: str | None = None,
         assurance_level: int | None = None, sensitive_confirmed: bool = False) -> Approval:
    """Change what an active or suspended client may do (what is not given stays as it is).

    Narrowing (fewer scopes, audiences or served resources, a shorter token lifetime, an
    earlier expiry, and nothing wider) takes effect at once, with the proofing it had: its
    tokens issued until now stop being valid (``tokens_not_before``; introspection and token
    exchange refuse them, a relying service validating offline sees them until they expire,
    ``max_token_ttl`` at most). Anything wider is a new approval: the proofing is recorded
    again (method, evidence, assurance level, as for ``lifecycle.approve``) and a sensitive
    scope added needs ``sensitive_confirmed``."""
    client = _in_status(client_id, (ACTIVE, SUSPENDED), "edited")
    old, now = client.approval, clock.now()
    if old is None or old.expires_at <= now:
        raise LifecycleError(f"client {client_id!r} cannot be edited: its approval has expired")
    scopes = list(dict.fromkeys(old.scopes if scopes is None else scopes))
    audiences = list(dict.fromkeys(old.audiences if audiences is None else audiences))
    serves = list(dict.fromkeys((old.serves or []) if serves is None else serves))
    max_token_ttl = old.max_token_ttl if max_token_ttl is None else max_token_ttl
    expires_at = expires_at or old.expires_at
    review_at = min(old.review_at, expires_at)  # never after the expiry
    check_grant(client, scopes=scopes, audiences=audiences, max_token_ttl=max_token_ttl,
                expires_at=expires_at, review_at=KEEP_REVIEW)
    for resource in serves:
        _check_resource(resource, "resource server identifier")
    after = {"scopes": scopes, "audiences": audiences, "serves": serves, "max_token_ttl": int(max_token_ttl),
             "expires_at": expires_at}
    before = {name: getattr(old, name) if name != "serves" else list(old.serves or []) for name in after}
    wider = _wider(before, after)
    if not wider and after == before:
        raise LifecycleError("nothing was changed: the edit is the approval as it is")
    if wider:
        if proofing_method is None or assurance_level is None:
            raise LifecycleError(f"widening ({', '.join(wider)}) is a new approval: record the proofing "
                                 "again (method, evidence, assurance level)")
        check_sensitive([s for s in scopes if s not in old.scopes], sensitive_confirmed)
        evidence = check_proofing(client, scopes=scopes, assurance_level=assurance_level,
                                  proofing_method=proofing_method, evidence=evidence)
        proofing = {"assurance_level": int(assurance_level), "proofing_method": proofing_method,
                    "evidence": evidence, "proofed_by": actor}
    else:
        proofing = {}  # narrowing keeps the proofing it had
    new = _replace(client, old, WIDENED if wider else NARROWED, actor, now, review_at=review_at,
                   **{**after, "max_token_ttl": int(max_token_ttl)}, **proofing)
    if not wider and client.status == ACTIVE:
        client.tokens_not_before = now  # what the wider approval issued is not valid again
    client.updated_at = now
    audit.record(f"client.approval_{'widened' if wider else 'narrowed'}", actor, client_id=client_id, data={
        "approval_id": new.id, "supersedes": old.id, "widened": wider,
        "before": _grant(before, old), "after": _grant(after, new)})
    db.session.commit()
    log.info("approval of %r %s by %r", client_id, new.change, actor)
    return new


def suspend_overdue_reviews(*, actor: str = "system") -> int:
    """Suspend every active client whose review date passed more than REVIEW_GRACE_DAYS ago
    without a renewal, with that reason, audited. Returns how many (``ostiary registration
    sweep``)."""
    now = clock.now()
    query = (select(Client).join(Approval, Approval.id == Client.approval_id)
             .where(Client.status == ACTIVE, Approval.review_at <= now - review_grace())
             .with_for_update(of=Client))
    clients = db.session.execute(query).scalars().all()
    for client in clients:
        due = client.approval.review_at
        reason = (f"{REVIEW_OVERDUE}: due on {due.date()}, not renewed within the "
                  f"{current_app.config['REVIEW_GRACE_DAYS']}-day grace period")
        _set_status(client, SUSPENDED, reason, now)
        audit.record("client.suspended", actor, client_id=client.client_id, reason=reason,
                     data={"cause": "review_overdue", "approval_id": client.approval_id,
                           "review_at": due.isoformat()})
    db.session.commit()
    return len(clients)


def _replace(client: Client, old: Approval, change: str, actor: str, now: datetime, **values) -> Approval:
    kept = {name: getattr(old, name) for name in (
        "owner", "purpose", "scopes", "audiences", "serves", "max_token_ttl", "expires_at", "review_at",
        "assurance_level", "proofing_method", "evidence", "proofed_by")}
    new = Approval(client_id=client.client_id, **{**kept, **values}, approved_by=actor, approved_at=now,
                   change=change, supersedes_id=old.id)
    db.session.add(new)
    db.session.flush()
    client.approval_id = new.id
    return new


def _wider(before: dict, after: dict) -> list[str]:
    """What of ``after`` grants more than ``before`` (the names of the widened parts)."""
    wider = [name for name in ("scopes", "audiences", "serves") if set(after[name]) - set(before[name])]
    if after["max_token_ttl"] > before["max_token_ttl"]:
        wider.append("max_token_ttl")
    if after["expires_at"] > before["expires_at"]:
        wider.append("expires_at")
    return wider


def _grant(values: dict, approval: Approval) -> dict:
    return {**values, "expires_at": values["expires_at"].isoformat(), **_proofing(approval)}


def _proofing(approval: Approval) -> dict:
    return {"assurance_level": approval.assurance_level, "proofing_method": approval.proofing_method,
            "evidence": approval.evidence, "proofed_by": approval.proofed_by,
            "review_at": approval.review_at.isoformat(), "expires_at": approval.expires_at.isoformat()}
