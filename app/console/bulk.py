"""Console: one action (deny, suspend) on many clients ticked in the pending queue or the
inventory, always in two steps.

``POST /console/bulk/confirm`` changes nothing: it answers a page naming what will happen to
which clients, and which of the ticked ones it will not touch and why. Only its own form,
carrying exactly the clients it named and a reason, goes on to ``POST /console/bulk``, which
calls the one lifecycle function per client (``app.registration.lifecycle``), so each client
gets its own transaction and its own audit event. A client whose state changed between the
two steps is skipped and named, never changed by surprise.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from flask import flash, redirect, render_template, url_for

from app.console import bp
from app.console.auth import actor
from app.console.forms import BulkConfirmForm, BulkSelectForm
from app.console.queries import clients_by_id
from app.extensions import db
from app.models.client import ACTIVE, PENDING
from app.registration import lifecycle

log = logging.getLogger(__name__)

MAX_BULK = 500  # clients per bulk action: a page of the queue or a few of the inventory's


@dataclass(frozen=True)
class Action:
    name: str
    verb: str  # "Deny"
    done: str  # "denied"
    applies_to: tuple[str, ...]  # the statuses it moves a client from
    service: Callable


ACTIONS = {
    "deny": Action("deny", "Deny", "denied", (PENDING,), lifecycle.deny),
    "suspend": Action("suspend", "Suspend", "suspended", (ACTIVE,), lifecycle.suspend),
}


def _back(value: str | None) -> str:
    """Where to return: a console page this form came from, never another site."""
    if value and value.startswith(bp.url_prefix + "/") and not value.startswith("//") and "\\" not in value:
        return value.rstrip("?")
    return url_for("console.pending")


def _ids(values) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _confirmation(action: Action, client_ids: list[str], back: str, form: BulkConfirmForm | None = None,
                  status: int = 200):
    clients = clients_by_id(client_ids)
    known = {c.client_id for c in clients}
    ready = [c for c in clients if c.status in action.applies_to]
    skipped = [c for c in clients if c.status not in action.applies_to]
    unknown = [i for i in client_ids if i not in known]
    if form is None:
        form = BulkConfirmForm(action=action.name, client_ids=" ".join(c.client_id for c in ready), back=back)
    return render_template("console/bulk_confirm.html", action=action, ready=ready, skipped=skipped,
                           unknown=unknown, form=form, back=back), status


@bp.post("/bulk/confirm")
def bulk_confirm():
    """The confirmation page for the ticked clients; nothing is changed here."""
    form = BulkSelectForm()
    back = _back(form.back.data)
    if not form.validate_on_submit():
        problems = [e for errors in form.errors.values() for e in errors]
        flash("Nothing was changed: " + " ".join(problems or ["the form was not valid; reload the page."]))
        return redirect(back, 303)
    client_ids = _ids(form.client_id.data)
    if len(client_ids) > MAX_BULK:
        flash(f"Nothing was changed: at most {MAX_BULK} clients at a time ({len(client_ids)} were selected).")
        return redirect(back, 303)
    return _confirmation(ACTIONS[form.action.data], client_ids, back)


@bp.post("/bulk")
def bulk_apply():
    """Apply the confirmed action to exactly the clients the confirmation page named."""
    form = BulkConfirmForm()
    back = _back(form.back.data)
    action = ACTIONS.get(form.action.data or "")
    client_ids = _ids((form.client_ids.data or "").split())
    if action is None or not client_ids or len(client_ids) > MAX_BULK:
        flash("Nothing was changed: the confirmation did not name an action and its clients; start again.")
        return redirect(back, 303)
    if not form.validate_on_submit():
        return _confirmation(action, client_ids, back, form=form, status=400)
    done, skipped = 0, []
    for client_id in client_ids:
        try:
            action.service(client_id, reason=form.reason.data, actor=actor())
            done += 1
        except lifecycle.LifecycleError as exc:
            db.session.rollback()
            skipped.append(str(exc))
    log.info("bulk %s by %r: %d done, %d skipped", action.name, actor(), done, len(skipped))
    flash(f"{action.done.capitalize()} {done} client{'s' if done != 1 else ''}."
          + (f" Skipped {len(skipped)}: {'; '.join(skipped)}" if skipped else ""))
    return redirect(back, 303)
