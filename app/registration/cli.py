"""``ostiary registration|client|iat …``: thin commands over the registration services."""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime, time, timedelta, timezone

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.models import Client, ClientDocument
from app.models.client import ACTIVE, PENDING, STATUSES
from app.registration import access, approvals, cli_bulk, iat, lifecycle, service
from app.registration.cli_bulk import matching_options
from app.registration.documents_cli import document_summary
from app.registration.metadata import escape_display
from app.support import clock
from app.support.cli import actor, emit, fail, failing_on

log = logging.getLogger(__name__)

YES = click.option("--yes", is_flag=True, help="Do it without asking (for scripts).")
DENY = cli_bulk.Action("Deny", "denied", (PENDING,), "they will never be approved", lifecycle.deny)
SUSPEND = cli_bulk.Action("Suspend", "suspended", (ACTIVE,), "the tokens they hold stop being valid and they get "
                          "no new ones until they are reactivated", lifecycle.suspend)


def _confirm(what: str, yes: bool) -> None:
    """Say what will happen and ask, unless ``--yes``: no answer, or any but yes, changes nothing."""
    if not yes:
        click.confirm(f"{what}. Continue?", abort=True, err=True)


def _date(value: str | None, what: str) -> datetime | None:
    """YYYY-MM-DD, taken as the end of that day in UTC."""
    if value is None:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        fail(f"{what} must be a date like 2027-01-31")
    return datetime.combine(day, time(23, 59, 59), tzinfo=timezone.utc)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def client_summary(client: Client) -> dict:
    approval = client.approval
    return {
        "client_id": client.client_id, "version": client.version, "status": client.status,
        "status_reason": client.status_reason, "client_name": client.client_name, "provenance": client.provenance,
        "publisher": client.publisher.issuer if client.publisher else None, "software_id": client.software_id,
        "signed_fields": client.signed_fields or [],
        "registered_from": client.registered_from, "created_at": _ts(client.created_at),
        "pending_expires_at": _ts(client.pending_expires_at), "review_flags": client.review_flags or [],
        "approval_expired_at": _ts(client.approval_expired_at),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "secret_expires_at": _ts(client.secret_expires_at),
        "previous_secret_valid_until": _ts(client.previous_secret_until),
        "requested_scope": (client.client_metadata or {}).get("scope"),
        "requested_audiences": (client.client_metadata or {}).get("audiences"),
        "approval": None if approval is None else {
            "owner": approval.owner, "purpose": approval.purpose, "scopes": approval.scopes,
            "audiences": approval.audiences, "serves": approval.serves or [],
            "max_token_ttl": approval.max_token_ttl,
            "expires_at": _ts(approval.expires_at), "review_at": _ts(approval.review_at),
            "assurance_level": approval.assurance_level, "proofing_method": approval.proofing_method,
            "evidence": approval.evidence, "proofed_by": approval.proofed_by,
            "approved_by": approval.approved_by, "approved_at": _ts(approval.approved_at),
            "change": approval.change, "supersedes": approval.supersedes_id},
    }


# ---- registration ---------------------------------------------------------------------------

@click.group("registration")
def registration_group():
    """Registrations waiting for approval, and the decisions on them."""


@registration_group.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def registration_list(status, as_json):
    query = select(Client).order_by(Client.created_at)
    if status:
        query = query.where(Client.status == status)
    items = [client_summary(c) for c in db.session.execute(query).scalars()]
    emit(items, as_json, lambda item: (
        f"{item['status']:<9} {item['client_id']}  {escape_display(item['client_name'])!s:<30} "
        f"{item['provenance']}{' ' + item['publisher'] if item['publisher'] else ''}"
        f"{' [review flags]' if item['review_flags'] else ''}"))


@registration_group.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def registration_show(client_id, as_json):
    client = db.session.get(Client, client_id)
    if client is None:
        fail(f"no client {client_id!r}")
    item = client_summary(client)
    item["metadata"] = client.client_metadata
    item["related"] = [{"client_id": c.client_id, "status": c.status, "provenance": c.provenance}
                       for c in service.related(client)]
    item["same_statement"] = [{"client_id": c.client_id, "status": c.status, "registered_from": c.registered_from}
                              for c in service.same_statement(client)]
    item["access_requests"] = [{"person": r.person.public_id, "username": r.person.username, "reason": r.reason,
                                "at": _ts(r.created_at)} for r in access.access_requests(client.client_id)]
    stored = db.session.get(ClientDocument, client.client_id)
    item["client_id_metadata_document"] = document_summary(stored, client) if stored is not None else None
    if as_json:
        click.echo(json.dumps(item, indent=2))
        return
    for name, value in item.items():
        if name in ("metadata", "approval", "related", "same_statement", "access_requests",
                    "client_id_metadata_document"):
            continue
        shown = escape_display(value) if isinstance(value, str) else value
        click.echo(f"{name + ':':<27} {shown}")
    for flag in item["review_flags"]:
        click.echo(f"REVIEW: {flag}")
    if item["approval_expired_at"] and client.status != "expired":
        click.echo(f"EXPIRED: the approval also ran out ({item['approval_expired_at']}); the client stays "
                   f"{client.status}")
    if item["approval"]:
        click.echo("approval:")
        for name, value in item["approval"].items():
            click.echo(f"  {name + ':':<25} {escape_display(value) if isinstance(value, str) else value}")
    if item["same_statement"]:
        click.echo("REVIEW: the same software statement was presented by other registrations:")
        for other in item["same_statement"]:
            click.echo(f"  {other['status']:<9} {other['client_id']} from {other['registered_from']}")
    for asked in item["access_requests"]:
        click.echo(f"ASKED FOR by {asked['username'] or asked['person']} at {asked['at']}: "
                   f"{escape_display(asked['reason'])}")
    if stored is not None:
        click.echo(f"metadata document: published by {client.registered_from}, fetched {_ts(stored.fetched_at)}, "
                   f"kept until {_ts(stored.fresh_until)}{'; LAST FETCH FAILED: ' + stored.error if stored.error else ''}")
        click.echo(escape_display(json.dumps(stored.document, indent=2, ensure_ascii=False)))
    if item["related"]:
        click.echo(f"same software_id ({client.software_id}):")
        for rel in item["related"]:
            click.echo(f"  {rel['status']:<9} {rel['client_id']} ({rel['provenance']})")


@registration_group.command("approve")
@click.argument("client_id")
@click.option("--version", "version", type=int, required=True,
              help="The registration version you reviewed (`registration show`); refused if it changed since.")
@click.option("--owner", required=True, help="Accountable person or team.")
@click.option("--purpose", required=True)
@click.option("--scope", "scopes", required=True, multiple=True, help='Scopes, e.g. --scope "read write".')
@click.option("--audience", "audiences", multiple=True,
              help="Resource URI (repeatable); default: the audiences the client requested.")
@click.option("--serves", multiple=True,
              help="Resource URI this client is the relying service of (repeatable): it may introspect "
                   "tokens addressed to it.")
@click.option("--assurance", type=int, default=1, show_default=True)
@click.option("--proofing-method", required=True,
              help="How the client was proofed (a proofing method of the scope catalogue); there is no default.")
@click.option("--evidence", help="Reference to the proofing evidence (ticket, document id); required by the "
                                 "methods that claim evidence and from OSTIARY_EVIDENCE_REQUIRED_FROM_LEVEL on.")
@click.option("--expires", help="YYYY-MM-DD (default: OSTIARY_APPROVAL_DAYS from today).")
@click.option("--review", help="YYYY-MM-DD (default: OSTIARY_REVIEW_DAYS from today, not after --expires).")
@click.option("--max-token-ttl", type=int, help="Seconds (default: OSTIARY_ACCESS_TOKEN_TTL).")
@click.option("--confirm-sensitive", is_flag=True,
              help="Confirm the scopes the catalogue marks sensitive; without it they are refused.")
@with_appcontext
def registration_approve(client_id, version, owner, purpose, scopes, audiences, serves, assurance,
                         proofing_method, evidence, expires, review, max_token_ttl, confirm_sensitive):
    client = db.session.get(Client, client_id)
    if client is None:
        fail(f"no client {client_id!r}")
    expires_at, review_at = _default_dates(expires, review)
    audiences = list(audiences) or list((client.client_metadata or {}).get("audiences", []))
    with failing_on(lifecycle.LifecycleError):
        approval = lifecycle.approve(
            client_id, version=version, owner=owner, purpose=purpose, scopes=" ".join(scopes).split(),
            audiences=audiences, serves=list(serves), max_token_ttl=max_token_ttl or current_app.config["ACCESS_TOKEN_TTL"], expires_at=expires_at,
            review_at=review_at, assurance_level=assurance, proofing_method=proofing_method,
            evidence=evidence, actor=actor(), sensitive_confirmed=confirm_sensitive)
    click.echo(f"approved {client_id}: scopes {' '.join(approval.scopes)}, audiences "
               f"{' '.join(approval.audiences)}{', serves ' + ' '.join(approval.serves) if approval.serves else ''}, expires {approval.expires_at.date()}, "
               f"review {approval.review_at.date()}")


def _default_dates(expires: str | None, review: str | None) -> tuple[datetime, datetime]:
    """--expires and --review, or the defaults the console proposes too (APPROVAL_DAYS, REVIEW_DAYS)."""
    now, config = clock.now(), current_app.config
    expires_at = _date(expires, "--expires") or now + timedelta(days=config["APPROVAL_DAYS"])
    review_at = _date(review, "--review") or min(now + timedelta(days=config["REVIEW_DAYS"]), expires_at)
    return expires_at, review_at


@registration_group.command("deny")
@click.argument("client_ids", metavar="[CLIENT_ID]...", nargs=-1)
@click.option("--reason", required=True)
@matching_options
@YES
@with_appcontext
def registration_deny(client_ids, reason, yes, matching, **filters):
    """Deny a registration, several, or with --matching every pending one the filters select
    (each listed first; --yes skips the question)."""
    if len(client_ids) == 1 and not matching and not any(v is not None for v in filters.values()):
        client_id = client_ids[0]
        _confirm(f"Deny the registration {client_id}: it will never be approved", yes)
        with failing_on(lifecycle.LifecycleError):
            lifecycle.deny(client_id, reason=reason, actor=actor())
        click.echo(f"denied {client_id}")
        return
    cli_bulk.run(DENY, client_ids, matching=matching, filters=filters, reason=reason, yes=yes)


@registration_group.command("sweep")
@with_appcontext
def registration_sweep():
    """Purge pending registrations past OSTIARY_PENDING_TTL, expire clients past their approval
    (a suspended one stays suspended), and suspend clients whose review is overdue past
    OSTIARY_REVIEW_GRACE_DAYS."""
    purged = lifecycle.purge_stale_pending(actor=actor())
    expired = lifecycle.expire_due(actor=actor())
    overdue = approvals.suspend_overdue_reviews(actor=actor())
    click.echo(f"purged {purged} stale pending registration(s), expired {expired} client(s), "
               f"suspended {overdue} client(s) overdue for review")


# ---- client ---------------------------------------------------------------------------------

@click.group("client")
def client_group():
    """Status changes of approved clients."""


@client_group.command("suspend")
@click.argument("client_ids", metavar="[CLIENT_ID]...", nargs=-1)
@click.option("--reason", default="suspended from the command line", show_default=True)
@matching_options
@YES
@with_appcontext
def client_suspend(client_ids, reason, yes, matching, **filters):
    """Suspend a client, several, or with --matching every active one the filters select
    (each listed first; --yes skips the question)."""
    if len(client_ids) == 1 and not matching and not any(v is not None for v in filters.values()):
        client_id = client_ids[0]
        _confirm(f"Suspend {client_id}: the tokens it holds stop being valid and it gets no new ones "
                 "until it is reactivated", yes)
        with failing_on(lifecycle.LifecycleError):
            lifecycle.suspend(client_id, reason=reason, actor=actor())
        click.echo(f"suspended {client_id}")
        return
    cli_bulk.run(SUSPEND, client_ids, matching=matching, filters=filters, reason=reason, yes=yes)


@client_group.command("reactivate")
@click.argument("client_id")
@with_appcontext
def client_reactivate(client_id):
    with failing_on(lifecycle.LifecycleError):
        lifecycle.reactivate(client_id, actor=actor())
    click.echo(f"reactivated {client_id}")


@client_group.command("retire")
@click.argument("client_id")
@click.option("--reason")
@YES
@with_appcontext
def client_retire(client_id, reason, yes):
    _confirm(f"Retire {client_id} for good: every token it holds is revoked and it can never get "
             "another", yes)
    with failing_on(lifecycle.LifecycleError):
        lifecycle.retire(client_id, actor=actor(), reason=reason)
    click.echo(f"retired {client_id}; its tokens are revoked")


@client_group.command("rotate-secret")
@click.argument("client_id")
@YES
@with_appcontext
def client_rotate_secret(client_id, yes):
    """Issue a new client secret (shown once); the old one keeps working for
    OSTIARY_SECRET_ROTATION_GRACE seconds, then stops."""
    grace = current_app.config["SECRET_ROTATION_GRACE"]
    _confirm(f"Rotate the secret of {client_id}: the current one "
             + (f"keeps working for {grace} seconds, then stops" if grace else "stops working at once"), yes)
    with failing_on(lifecycle.LifecycleError):
        secret, expires_at, previous_until = lifecycle.rotate_secret(client_id, actor=actor())
    click.echo(f"client_secret: {secret}\nexpires_at:    {expires_at.isoformat()}\n"
               f"previous secret valid until: {previous_until.isoformat() if previous_until else 'no longer valid'}\n"
               "(shown only now; it is stored as a hash)")


@client_group.command("reviews")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def client_reviews(as_json):
    """Clients whose review is past or within OSTIARY_REVIEW_WINDOW_DAYS, the newest due first."""
    now = clock.now()
    items = [{"client_id": c.client_id, "client_name": c.client_name, "status": c.status,
              "owner": c.approval.owner, "review_at": _ts(c.approval.review_at),
              "overdue": c.approval.review_at <= now, "expires_at": _ts(c.approval.expires_at)}
             for c in approvals.reviews_due(now)]
    emit(items, as_json, lambda item: (
        f"{'OVERDUE' if item['overdue'] else 'due':<8} {item['review_at'][:10]}  {item['status']:<9} "
        f"{item['client_id']}  {escape_display(item['client_name'])!s:<30} owner {escape_display(item['owner'])}"))


@client_group.command("renew")
@click.argument("client_id")
@click.option("--proofing-method", required=True, help="How the client was proofed again; there is no default.")
@click.option("--evidence", help="Reference to the evidence of this review.")
@click.option("--assurance", type=int, required=True, help="The assurance level of this proofing.")
@click.option("--review", help="Next review, YYYY-MM-DD (default: OSTIARY_REVIEW_DAYS from today).")
@click.option("--expires", help="A new expiry, YYYY-MM-DD (default: the approval's).")
@with_appcontext
def client_renew(client_id, proofing_method, evidence, assurance, review, expires):
    """Renew an approval at its review: the proofing is recorded again and the next review set."""
    client = db.session.get(Client, client_id)
    if client is None or client.approval is None:
        fail(f"no approved client {client_id!r}")
    expires_at = _date(expires, "--expires") or client.approval.expires_at
    review_at = _date(review, "--review") or min(
        clock.now() + timedelta(days=current_app.config["REVIEW_DAYS"]), expires_at)
    with failing_on(lifecycle.LifecycleError):
        approval = approvals.renew(client_id, proofing_method=proofing_method, evidence=evidence,
                                   assurance_level=assurance, review_at=review_at, expires_at=expires_at,
                                   actor=actor())
    click.echo(f"renewed {client_id}: next review {approval.review_at.date()}, "
               f"expires {approval.expires_at.date()}")


@client_group.command("edit")
@click.argument("client_id")
@click.option("--scope", "scopes", multiple=True, help='The scopes it keeps or gets, e.g. --scope "read write".')
@click.option("--audience", "audiences", multiple=True, help="Resource URI (repeatable).")
@click.option("--max-token-ttl", type=int, help="Seconds.")
@click.option("--expires", help="YYYY-MM-DD.")
@click.option("--proofing-method", help="Widening only: how the client was proofed for it.")
@click.option("--evidence", help="Widening only: the evidence reference.")
@click.option("--assurance", type=int, help="Widening only: the assurance level of that proofing.")
@click.option("--confirm-sensitive", is_flag=True, help="Confirm the sensitive scopes it gets.")
@with_appcontext
def client_edit(client_id, scopes, audiences, max_token_ttl, expires, proofing_method, evidence, assurance,
                confirm_sensitive):
    """Change an approval (what is not given stays). Narrowing takes effect at once; widening
    is a new approval and needs the proofing again."""
    with failing_on(lifecycle.LifecycleError):
        approval = approvals.edit(
            client_id, actor=actor(), scopes=" ".join(scopes).split() if scopes else None,
            audiences=list(audiences) or None, max_token_ttl=max_token_ttl,
            expires_at=_date(expires, "--expires"), proofing_method=proofing_method, evidence=evidence,
            assurance_level=assurance, sensitive_confirmed=confirm_sensitive)
    click.echo(f"{approval.change} the approval of {client_id}: scopes {' '.join(approval.scopes)}, audiences "
               f"{' '.join(approval.audiences)}, max token ttl {approval.max_token_ttl} s, "
               f"expires {approval.expires_at.date()}")


# ---- initial access tokens ------------------------------------------------------------------

DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@click.group("iat")
def iat_group():
    """Initial access tokens (registration policy initial_access_token)."""


@iat_group.command("create")
@click.option("--uses", type=int, default=1, show_default=True, help="How many registrations it allows.")
@click.option("--expires-in", default="7d", show_default=True, help="Lifetime: 3600, 90m, 12h, 7d.")
@click.option("--note", help="What it is for (shown in the list and the audit trail).")
@with_appcontext
def iat_create(uses, expires_in, note):
    match = DURATION.match(expires_in)
    if not match:
        fail("--expires-in must be a number with an optional unit s, m, h or d")
    with failing_on(iat.InitialAccessTokenError):
        token, row = iat.create(max_uses=uses, ttl=int(match[1]) * UNITS[match[2]], actor=actor(), note=note)
    click.echo(f"initial access token (shown only now): {token}")
    click.echo(f"id {row.id}, {row.max_uses} use(s), expires {row.expires_at.isoformat()}")


@iat_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def iat_list(as_json):
    now = clock.now()
    items = [{"id": t.id, "uses": t.uses, "max_uses": t.max_uses, "expires_at": _ts(t.expires_at),
              "expired": t.expires_at <= now, "created_by": t.created_by, "note": t.note}
             for t in iat.all_tokens()]
    emit(items, as_json, lambda item: (
        f"{item['id']:>4}  {'expired' if item['expired'] else 'valid':<7} {item['uses']}/{item['max_uses']} used  "
        f"expires {item['expires_at']}  {item['note'] or ''}"))


@iat_group.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def iat_revoke(token_id):
    with failing_on(iat.InitialAccessTokenError):
        iat.revoke(token_id, actor=actor())
    click.echo(f"revoked initial access token {token_id}")
