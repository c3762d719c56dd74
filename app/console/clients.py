"""Console: registration detail with proofing and approval, the inventory, and client actions.

Each POST view validates its form (CSRF included) and calls exactly one
``app.registration.lifecycle`` function with ``actor="admin:<username>"``.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone

from flask import abort, flash, redirect, render_template, request, url_for

from app.console import bp
from app.console.auth import actor
from app.console.forms import (
    ActionForm,
    ApprovalForm,
    AssuranceForm,
    InventoryFilterForm,
    OptionalReasonForm,
    ReasonForm,
)
from app.console.queries import FLAGS, key_thumbprints, statement_claims, token_usage
from app.console.queries import inventory as inventory_rows
from app.extensions import db
from app.models import Client
from app.models.client import STATUSES
from app.policy import scopes as catalogue
from app.registration import lifecycle
from app.registration.metadata import AUDIENCES, escape_display
from app.registration.service import related, same_statement
from app.support import clock

log = logging.getLogger(__name__)

DEFAULT_APPROVAL_DAYS, DEFAULT_REVIEW_DAYS = 180, 90


def get_client_or_404(client_id: str) -> Client:
    """The client, or a 404 page: the console never guesses at an unknown id."""
    client = db.session.get(Client, client_id)
    if client is None:
        abort(404, description=f"There is no client {client_id!r}.")
    return client


def display_name(client: Client) -> str:
    return escape_display(client.client_name) or client.client_id


def _end_of_day(value: date) -> datetime:
    return datetime.combine(value, time(23, 59, 59), tzinfo=timezone.utc)


def _level(client: Client, cat) -> int:
    """The assurance level the approval form is for: chosen by the admin, else what the
    client's verified publisher vouches for, else the lowest."""
    chosen = request.args.get("level", type=int)
    if chosen in cat.levels:
        return chosen
    if client.publisher is not None and client.publisher.assurance_level in cat.levels:
        return client.publisher.assurance_level
    return min(cat.levels)


def _approval_form(client: Client, level: int, cat, formdata=None) -> ApprovalForm:
    requested = (client.client_metadata or {}).get("scope", "").split()
    candidates = requested or list(cat.scopes)
    today = clock.now().date()
    form = ApprovalForm(formdata=formdata, data=None if formdata else {
        "assurance_level": level, "version": client.version, "scopes": [s for s in candidates if cat.needed_level(s) <= level],
        "audiences": "\n".join((client.client_metadata or {}).get(AUDIENCES, [])),
        "max_token_ttl": 300,
        "proofing_method": "software_statement" if client.publisher else None,
        "expires_at": today + timedelta(days=DEFAULT_APPROVAL_DAYS),
        "review_at": today + timedelta(days=DEFAULT_REVIEW_DAYS)})
    form.proofing_method.choices = [(m, m.replace("_", " ").capitalize()) for m in cat.proofing_methods]
    form.scopes.choices = [(s, s) for s in candidates if cat.needed_level(s) <= level]
    form.blocked_scopes = [(s, cat.needed_level(s)) for s in candidates if cat.needed_level(s) > level]
    form.free_scopes = not requested and not cat.restrict
    return form


def _render_detail(client: Client, approval_form=None, deny_form=None, status=200):
    cat = catalogue.current()
    level = approval_form.assurance_level.data if approval_form else _level(client, cat)
    header, claims, statement_error = statement_claims(client)
    last_token, tokens_24h = token_usage([client.client_id]).get(client.client_id, (None, 0))
    assurance = AssuranceForm(level=level)
    assurance.level.choices = [(n, f"{n} — {v.get('name', '')}: {v.get('description', '')}")
                               for n, v in cat.levels.items()]
    return render_template(
        "console/client.html", client=client, catalogue=cat, level=level, assurance=assurance,
        approval_form=approval_form or _approval_form(client, level, cat),
        deny_form=deny_form or ReasonForm(), reason_form=ReasonForm(),
        retire_form=OptionalReasonForm(), action_form=ActionForm(),
        statement_header=header, statement_claims=claims, statement_error=statement_error,
        thumbprints=key_thumbprints(client), related=related(client),
        same_statement=same_statement(client), last_token=last_token,
        tokens_24h=tokens_24h), status


@bp.get("/clients/<client_id>")
def client(client_id: str):
    return _render_detail(get_client_or_404(client_id))


@bp.post("/clients/<client_id>/approve")
def approve(client_id: str):
    client = get_client_or_404(client_id)
    cat = catalogue.current()
    level = request.form.get("assurance_level", type=int)
    form = _approval_form(client, level if level in cat.levels else min(cat.levels), cat,
                          formdata=request.form)
    if not form.validate_on_submit():
        return _render_detail(client, approval_form=form, status=400)
    scopes = list(form.scopes.data or [])
    if form.free_scopes:
        scopes += (form.other_scopes.data or "").split()
    try:
        lifecycle.approve(
            client_id, version=form.version.data, owner=form.owner.data, purpose=form.purpose.data,
            scopes=scopes, audiences=form.audience_list(), serves=form.serves_list(), max_token_ttl=form.max_token_ttl.data,
            expires_at=_end_of_day(form.expires_at.data), review_at=_end_of_day(form.review_at.data),
            assurance_level=form.assurance_level.data, proofing_method=form.proofing_method.data,
            evidence=form.evidence.data or None, actor=actor())
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render_detail(client, approval_form=form, status=400)
    flash(f"Approved {display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)


def _transition(client_id: str, form, call, done: str):
    """Validate ``form`` and run one lifecycle call; report the outcome on the client page."""
    client = get_client_or_404(client_id)
    if not form.validate_on_submit():
        flash("Nothing was changed: " + "; ".join(
            f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items()))
        return redirect(url_for("console.client", client_id=client_id), 303)
    try:
        call(form)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        flash(f"Nothing was changed: {exc}")
    else:
        flash(f"{done.capitalize()} {display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)


@bp.post("/clients/<client_id>/deny")
def deny(client_id: str):
    return _transition(client_id, ReasonForm(), lambda f: lifecycle.deny(
        client_id, reason=f.reason.data, actor=actor()), "denied")


@bp.post("/clients/<client_id>/suspend")
def suspend(client_id: str):
    return _transition(client_id, ReasonForm(), lambda f: lifecycle.suspend(
        client_id, reason=f.reason.data, actor=actor()), "suspended")


@bp.post("/clients/<client_id>/reactivate")
def reactivate(client_id: str):
    return _transition(client_id, ActionForm(), lambda f: lifecycle.reactivate(
        client_id, actor=actor()), "reactivated")


@bp.post("/clients/<client_id>/retire")
def retire(client_id: str):
    return _transition(client_id, OptionalReasonForm(), lambda f: lifecycle.retire(
        client_id, reason=f.reason.data or None, actor=actor()), "retired")


@bp.post("/clients/<client_id>/rotate-secret")
def rotate_secret(client_id: str):
    """The new secret is shown once, in this response (never stored, never in a redirect)."""
    client = get_client_or_404(client_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form was not valid (missing or expired CSRF token).")
    try:
        secret, expires_at = lifecycle.rotate_secret(client_id, actor=actor())
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        flash(f"Nothing was changed: {exc}")
        return redirect(url_for("console.client", client_id=client_id), 303)
    return render_template("console/secret.html", client=client, secret=secret, expires_at=expires_at)


@bp.get("/inventory")
def inventory():
    form = InventoryFilterForm(request.args)
    form.status.choices = [("", "Any status")] + [(s, s) for s in STATUSES]
    form.flag.choices = [("", "Any")] + list(FLAGS.items())
    valid = form.validate()
    unused_days = (form.unused_days.data or 30) if valid else 30
    rows = inventory_rows(form.status.data if valid else None, form.flag.data if valid else None,
                          unused_days)
    return render_template("console/inventory.html", form=form, rows=rows, flags=FLAGS,
                           unused_days=unused_days, action_form=ActionForm(), reason_form=ReasonForm())
