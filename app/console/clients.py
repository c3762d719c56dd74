"""Console: registration detail with proofing and approval, and client actions (the inventory
is ``app.console.inventory``). A client id may be a URL (a metadata document): its routes take a
path, and keep its ``//``.

Each POST view validates its form (CSRF included) and calls exactly one
``app.registration.lifecycle`` function with ``actor="admin:<username>"``.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.console import bp
from app.console.auth import actor
from app.console.forms import (
    ActionForm,
    OptionalReasonForm,
    ReasonForm,
)
from app.console.proofing import approval_form as approval_form_for
from app.console.proofing import edit_form, initial_level, renew_form
from app.console.queries import key_thumbprints, statement_claims
from app.extensions import db
from app.models import Client, ClientDocument, IssuedToken
from app.models.client import ACTIVE, SUSPENDED, is_url_id
from app.policy import scopes as catalogue
from app.registration import documents, lifecycle
from app.registration.inventory import token_usage
from app.registration.metadata import escape_display
from app.registration.service import related, same_statement
from app.support import clock

log = logging.getLogger(__name__)


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


def _render_detail(client: Client, approval_form=None, deny_form=None, status=200, *, renew=None, edit=None):
    cat = catalogue.current()
    level = approval_form.assurance_level.data if approval_form else initial_level(client, cat)
    header, claims, statement_error = statement_claims(client)
    last_token, tokens_24h = token_usage([client.client_id]).get(client.client_id, (None, 0))
    live = (client.approval is not None and client.status in (ACTIVE, SUSPENDED)
            and client.approval.expires_at > clock.now())  # what renewal and edits accept
    return render_template(
        "console/client.html", client=client, catalogue=cat, level=level, now=clock.now(),
        document=db.session.get(ClientDocument, client.client_id) if is_url_id(client.client_id) else None,
        approval_form=approval_form or approval_form_for(client, level, cat),
        renew_form=renew or (renew_form(client, cat) if live else None),
        edit_form=edit or (edit_form(client, cat) if live else None),
        deny_form=deny_form or ReasonForm(), reason_form=ReasonForm(),
        retire_form=OptionalReasonForm(), action_form=ActionForm(),
        statement_header=header, statement_claims=claims, statement_error=statement_error,
        thumbprints=key_thumbprints(client), related=related(client),
        same_statement=same_statement(client), last_token=last_token,
        tokens_24h=tokens_24h), status


@bp.get("/clients/<path:client_id>", merge_slashes=False)
def client(client_id: str):
    return _render_detail(get_client_or_404(client_id))


@bp.post("/clients/<path:client_id>/approve", merge_slashes=False)
def approve(client_id: str):
    """Approve; or, with the ``refresh`` button, show the form again at the assurance level
    chosen (other scopes offered), with everything typed kept, approving nothing."""
    client = get_client_or_404(client_id)
    cat = catalogue.current()
    level = request.form.get("assurance_level", type=int)
    form = approval_form_for(client, level if level in cat.levels else min(cat.levels), cat,
                             formdata=request.form)
    if "refresh" in request.form:
        form.assurance_level.data = level if level in cat.levels else min(cat.levels)
        return _render_detail(client, approval_form=form)
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
            evidence=form.evidence.data or None, actor=actor(),
            sensitive_confirmed=form.confirm_sensitive.data)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render_detail(client, approval_form=form, status=400)
    flash(f"Approved {display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)


CONFIRMED = "yes"  # the value of the ``confirmed`` field the confirmation page posts


def _confirmation(client: Client, form, verb: str, consequences: list[str]):
    """The second step of an action that cannot be taken back lightly: a page that names
    what will happen, posting the same form again with ``confirmed``."""
    return render_template("console/confirm.html", client=client, form=form, verb=verb,
                           consequences=consequences, action=request.path, confirmed=CONFIRMED)


def _live_tokens(client_id: str) -> int:
    now = clock.now()
    return db.session.scalar(select(func.count()).select_from(IssuedToken).where(
        IssuedToken.client_id == client_id, IssuedToken.revoked_at.is_(None), IssuedToken.expires_at > now))


def _consequences(client: Client, verb: str) -> list[str]:
    name, tokens = display_name(client), _live_tokens(client.client_id)
    held = f"the {tokens} unexpired token{'s' if tokens != 1 else ''} it holds"
    if verb == "suspend":
        return [f"{name} gets no new token until an administrator reactivates it.",
                (f"{held.capitalize()} stop being valid at introspection and token exchange, for good, "
                 "even after a reactivation.")]
    if verb == "retire":
        return [f"{name} is retired for good: it can never get a token again, and it cannot be undone.",
                f"{held.capitalize()} are revoked."]
    if verb == "deny":
        return [(f"The registration of {name} is denied and can never be approved; the client sees the "
                 "reason when it reads its registration.")]
    if verb == "rotate the secret of":
        grace = int(current_app.config["SECRET_ROTATION_GRACE"])
        until = clock.now() + timedelta(seconds=grace)
        if client.secret_expires_at is not None:
            until = min(until, client.secret_expires_at)
        return ["A new client secret is made and shown once, on the next page.",
                (f"The current secret keeps working until {until.strftime('%Y-%m-%d %H:%M UTC')} "
                 f"(OSTIARY_SECRET_ROTATION_GRACE, {grace} s), then stops." if grace and until > clock.now()
                 else "The current secret stops working at once.")]
    return []


def _transition(client_id: str, form, call, done: str, verb: str | None = None):
    """Validate ``form`` and run one lifecycle call; report the outcome on the client page.
    With ``verb``, the call is made only once confirmed (``_confirmation``)."""
    client = get_client_or_404(client_id)
    if not form.validate_on_submit():
        flash("Nothing was changed: " + "; ".join(
            f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items()))
        return redirect(url_for("console.client", client_id=client_id), 303)
    if verb is not None and request.form.get("confirmed") != CONFIRMED:
        return _confirmation(client, form, verb, _consequences(client, verb))
    try:
        call(form)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        flash(f"Nothing was changed: {exc}")
    else:
        flash(f"{done.capitalize()} {display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)


@bp.post("/clients/<path:client_id>/document/refresh", merge_slashes=False)
def refresh_document(client_id: str):
    """Fetch the client's metadata document now (``documents.refresh``), whatever its cache time."""
    client = get_client_or_404(client_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form was not valid (missing or expired CSRF token).")
    try:
        documents.refresh(client.client_id, actor=actor())
    except documents.DocumentError as exc:
        db.session.rollback()
        flash(f"The document could not be used: {exc}")
    else:
        flash(f"Fetched the metadata document of {display_name(client)} again.")
    return redirect(url_for("console.client", client_id=client_id), 303)


@bp.post("/clients/<path:client_id>/deny", merge_slashes=False)
def deny(client_id: str):
    return _transition(client_id, ReasonForm(), lambda f: lifecycle.deny(
        client_id, reason=f.reason.data, actor=actor()), "denied", "deny")


@bp.post("/clients/<path:client_id>/suspend", merge_slashes=False)
def suspend(client_id: str):
    return _transition(client_id, ReasonForm(), lambda f: lifecycle.suspend(
        client_id, reason=f.reason.data, actor=actor()), "suspended", "suspend")


@bp.post("/clients/<path:client_id>/reactivate", merge_slashes=False)
def reactivate(client_id: str):
    return _transition(client_id, ActionForm(), lambda f: lifecycle.reactivate(
        client_id, actor=actor()), "reactivated")


@bp.post("/clients/<path:client_id>/retire", merge_slashes=False)
def retire(client_id: str):
    return _transition(client_id, OptionalReasonForm(), lambda f: lifecycle.retire(
        client_id, reason=f.reason.data or None, actor=actor()), "retired", "retire")


@bp.post("/clients/<path:client_id>/rotate-secret", merge_slashes=False)
def rotate_secret(client_id: str):
    """The new secret is shown once, in this response (never stored, never in a redirect)."""
    client = get_client_or_404(client_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description="The form was not valid (missing or expired CSRF token).")
    if request.form.get("confirmed") != CONFIRMED:
        verb = "rotate the secret of"
        return _confirmation(client, form, verb, _consequences(client, verb))
    try:
        secret, expires_at, previous_until = lifecycle.rotate_secret(client_id, actor=actor())
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        flash(f"Nothing was changed: {exc}")
        return redirect(url_for("console.client", client_id=client_id), 303)
    return render_template("console/secret.html", client=client, secret=secret, expires_at=expires_at,
                           previous_until=previous_until)
