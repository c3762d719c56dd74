"""Console: the home page with the review queue, and an approval's later life (renewal and
edits), each POST one call of ``app.registration.approvals``."""
from __future__ import annotations

import logging

from flask import current_app, flash, redirect, render_template, request, url_for

from app.console import bp
from app.console.auth import actor
from app.console.clients import (
    _end_of_day,
    _render_detail,
    display_name,
    get_client_or_404,
)
from app.console.proofing import edit_form, renew_form
from app.extensions import db
from app.policy import scopes as catalogue
from app.registration import approvals, lifecycle
from app.support import clock

log = logging.getLogger(__name__)


@bp.get("/")
def index():
    """The home page: the clients due for review (past, or within REVIEW_WINDOW_DAYS)."""
    config = current_app.config
    return render_template("console/home.html", due=approvals.reviews_due(), now=clock.now(),
                           window=config["REVIEW_WINDOW_DAYS"], grace=lifecycle.review_grace())


@bp.post("/clients/<path:client_id>/renew", merge_slashes=False)  # a URL client id has slashes
def renew(client_id: str):
    client = get_client_or_404(client_id)
    form = renew_form(client, catalogue.current(), formdata=request.form)
    if not form.validate_on_submit():
        return _render_detail(client, renew=form, status=400)
    try:
        approvals.renew(client_id, proofing_method=form.proofing_method.data, evidence=form.evidence.data,
                        assurance_level=form.assurance_level.data, review_at=_end_of_day(form.review_at.data),
                        expires_at=_end_of_day(form.expires_at.data) if form.expires_at.data else None,
                        actor=actor())
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render_detail(client, renew=form, status=400)
    flash(f"Renewed the approval of {display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)


@bp.post("/clients/<path:client_id>/edit", merge_slashes=False)  # a URL client id has slashes
def edit(client_id: str):
    client = get_client_or_404(client_id)
    form = edit_form(client, catalogue.current(), formdata=request.form)
    if not form.validate_on_submit():
        return _render_detail(client, edit=form, status=400)
    approval = client.approval
    expires = form.expires_at.data
    try:
        new = approvals.edit(
            client_id, actor=actor(), scopes=list(form.scopes.data or []), audiences=form.audience_list(),
            max_token_ttl=form.max_token_ttl.data,
            # the same day is the same expiry (the form shows days, the approval keeps a time)
            expires_at=None if expires == approval.expires_at.date() else _end_of_day(expires),
            proofing_method=form.proofing_method.data or None, evidence=form.evidence.data,
            assurance_level=form.assurance_level.data, sensitive_confirmed=form.confirm_sensitive.data)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render_detail(client, edit=form, status=400)
    flash(f"{'Narrowed' if new.change == approvals.NARROWED else 'Widened'} the approval of "
          f"{display_name(client)}.")
    return redirect(url_for("console.client", client_id=client_id), 303)
