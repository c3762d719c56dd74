"""Console: trusted software publishers and workload-identity issuers (list, add, remove).

Adding and removing go through the owners' service functions:
``app.registration.publishers`` and ``app.oauth.workload``.
"""
from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, url_for
from .. import untrusted_json
from ..extensions import db
from ..models import Publisher, WorkloadIssuer
from ..oauth import workload
from ..registration import publishers
from ..registration import scopes as catalogue
from . import bp
from .auth import actor
from .forms import ActionForm, PublisherForm, WorkloadIssuerForm

log = logging.getLogger(__name__)

ISSUER_PREFIX = "wi"  # both add forms are on one page; the prefix keeps their field ids apart


def _publisher_form(formdata=None) -> PublisherForm:
    form = PublisherForm(formdata=formdata) if formdata is not None else PublisherForm()
    form.assurance_level.choices = [(n, f"{n} — {v.get('name', '')}")
                                    for n, v in catalogue.current().levels.items()]
    return form


def _render(publisher_form=None, issuer_form=None, status=200):
    return render_template("console/trust.html", publishers=publishers.all_publishers(),
                           issuers=workload.list_issuers(),
                           publisher_form=publisher_form or _publisher_form(),
                           issuer_form=issuer_form or WorkloadIssuerForm(prefix=ISSUER_PREFIX),
                           remove_form=ActionForm()), status


def _key_source(form, error) -> tuple[dict | None, str | None]:
    """The JWK Set pasted as JSON, or the JWKS URL (the services refuse both or neither)."""
    jwks = None
    if form.jwks.data and form.jwks.data.strip():
        try:
            jwks = untrusted_json.loads(form.jwks.data, what="the JWKS")
        except untrusted_json.UntrustedJSONError as exc:
            raise error(str(exc)) from None
    return jwks, form.jwks_uri.data or None


def _algorithms(form) -> list[str] | None:
    return [a.strip() for a in (form.algorithms.data or "").split(",") if a.strip()] or None


@bp.get("/trust")
def trust():
    return _render()


@bp.post("/trust/publishers")
def add_publisher():
    form = _publisher_form()
    if not form.validate_on_submit():
        return _render(publisher_form=form, status=400)
    try:
        jwks, jwks_uri = _key_source(form, publishers.PublisherError)
        publishers.add(form.issuer.data.strip(), jwks=jwks, jwks_uri=jwks_uri,
                       assurance_level=form.assurance_level.data, algorithms=_algorithms(form),
                       require_jti=form.require_jti.data, actor=actor())
    except publishers.PublisherError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render(publisher_form=form, status=400)
    flash(f"Added the publisher {form.issuer.data.strip()}.")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/publishers/<int:publisher_id>/remove")
def remove_publisher(publisher_id: int):
    publisher = db.session.get(Publisher, publisher_id)
    if publisher is None:
        abort(404, description="There is no such publisher (removed already?).")
    if ActionForm().validate_on_submit():
        try:
            publishers.remove(publisher.issuer, actor=actor())
            flash(f"Removed the publisher {publisher.issuer}.")
        except publishers.PublisherError as exc:
            db.session.rollback()
            flash(f"Nothing was changed: {exc}")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/workload-issuers")
def add_workload_issuer():
    form = WorkloadIssuerForm(prefix=ISSUER_PREFIX)
    if not form.validate_on_submit():
        return _render(issuer_form=form, status=400)
    try:
        jwks, jwks_uri = _key_source(form, workload.WorkloadIssuerError)
        workload.add_issuer(issuer=form.issuer.data.strip(), audience=form.audience.data.strip(),
                            jwks=jwks, jwks_uri=jwks_uri, algorithms=_algorithms(form),
                            subject_pattern=form.subject_pattern.data or None, actor=actor())
    except workload.WorkloadIssuerError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render(issuer_form=form, status=400)
    flash(f"Added the workload issuer {form.issuer.data.strip()}.")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/workload-issuers/<int:issuer_id>/remove")
def remove_workload_issuer(issuer_id: int):
    row = db.session.get(WorkloadIssuer, issuer_id)
    if row is None:
        abort(404, description="There is no such workload issuer (removed already?).")
    if ActionForm().validate_on_submit():
        try:
            workload.remove_issuer(row.issuer, actor=actor())
            flash(f"Removed the workload issuer {row.issuer}.")
        except workload.WorkloadIssuerError as exc:
            db.session.rollback()
            flash(f"Nothing was changed: {exc}")
    return redirect(url_for("console.trust"), 303)
