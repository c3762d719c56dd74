"""Console: the pending queue, grouped by provenance, and denying a whole group at once."""
from __future__ import annotations

import logging

from flask import flash, redirect, render_template, url_for

from app.console import bp
from app.console.auth import actor
from app.console.forms import DenyGroupForm
from app.console.queries import pending_groups
from app.extensions import db
from app.registration import lifecycle

log = logging.getLogger(__name__)


@bp.get("/pending")
def pending():
    groups = pending_groups()
    forms = {g.key: DenyGroupForm(client_ids=" ".join(c.client_id for c in g.clients)) for g in groups}
    return render_template("console/pending.html", groups=groups, deny_forms=forms)


@bp.post("/pending/deny")
def deny_group():
    """Deny exactly the registrations the administrator saw in the group, one lifecycle call each;
    one that was approved or denied meanwhile is skipped and named."""
    form = DenyGroupForm()
    if not form.validate_on_submit():
        flash("Nothing was changed: a reason is required to deny a group.")
        return redirect(url_for("console.pending"), 303)
    denied, skipped = 0, []
    for client_id in form.client_ids.data.split():
        try:
            lifecycle.deny(client_id, reason=form.reason.data, actor=actor())
            denied += 1
        except lifecycle.LifecycleError as exc:
            db.session.rollback()
            skipped.append(str(exc))
    flash(f"Denied {denied} registration{'s' if denied != 1 else ''}."
          + (f" Skipped: {'; '.join(skipped)}" if skipped else ""))
    return redirect(url_for("console.pending"), 303)
