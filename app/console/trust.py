"""Console: the trusted issuers, software publishers and workload issuers, and the trusted
publishers of client ID metadata documents (list, add, remove).

One view per operation for both kinds of issuer, through ``app.trust.issuers``; the publishers
of documents, whose rule is a prefix and a ceiling rather than keys, through
``app.trust.document_publishers``.
"""
from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, url_for

from app.console import bp
from app.console.auth import actor
from app.console.forms import ActionForm, DocumentPublisherForm, PublisherForm, WorkloadIssuerForm
from app.extensions import db
from app.models import DocumentPublisher
from app.policy import scopes as catalogue
from app.support import untrusted_json
from app.trust import document_publishers, issuers

log = logging.getLogger(__name__)

# URL segment -> (kind, its form, the form's field prefix: both add forms are on one page, and
# the prefix keeps their field ids apart)
KINDS = {"publishers": (issuers.PUBLISHERS, PublisherForm, ""),
         "workload-issuers": (issuers.WORKLOAD_ISSUERS, WorkloadIssuerForm, "wi")}


def _form(segment: str):
    _, form_class, prefix = KINDS[segment]
    form = form_class(prefix=prefix)
    if isinstance(form, PublisherForm):
        form.assurance_level.choices = [(n, f"{n} — {v.get('name', '')}")
                                        for n, v in catalogue.current().levels.items()]
    return form


def _document_form(form: DocumentPublisherForm | None = None) -> DocumentPublisherForm:
    """The add form of a document publisher, its choices from the scope catalogue: no proofing
    method chosen, and none that a rule cannot record (a document is no software statement)."""
    cat = catalogue.current()
    if form is None:
        form = DocumentPublisherForm(prefix="dp", approval_days=document_publishers.default_days())
    form.assurance_level.choices = [(n, f"{n} — {v.get('name', '')}") for n, v in cat.levels.items()]
    form.proofing_method.choices = [("", "— choose how you proofed the publisher —")] + [(m, m.replace("_", " ").capitalize())
                                                  for m in cat.proofing_methods if m != "software_statement"]
    return form


def _render(failed: tuple[str, object] | None = None, status=200):
    forms = {segment: _form(segment) for segment in KINDS}
    if failed:
        forms[failed[0]] = failed[1]
    return render_template("console/trust.html", publishers=issuers.listed(issuers.PUBLISHERS),
                           document_publishers=document_publishers.listed(),
                           issuers=issuers.listed(issuers.WORKLOAD_ISSUERS),
                           publisher_form=forms["publishers"], issuer_form=forms["workload-issuers"],
                           document_form=forms.get("document-publishers") or _document_form(),
                           remove_form=ActionForm()), status


def _kind(segment: str):
    if segment not in KINDS:
        abort(404)
    return KINDS[segment][0]


@bp.get("/trust")
def trust():
    return _render()


@bp.post("/trust/<segment>")
def add_trusted(segment: str):
    kind = _kind(segment)
    form = _form(segment)
    if not form.validate_on_submit():
        return _render((segment, form), status=400)
    try:
        jwks = None
        if form.jwks.data and form.jwks.data.strip():
            try:
                jwks = untrusted_json.loads(form.jwks.data, what="the JWKS")
            except untrusted_json.UntrustedJSONError as exc:
                raise issuers.TrustError(str(exc)) from None
        algorithms = [a.strip() for a in (form.algorithms.data or "").split(",") if a.strip()]
        row = issuers.add(kind, form.issuer.data, jwks=jwks, jwks_uri=form.jwks_uri.data or None,
                          algorithms=algorithms or None, actor=actor(), **form.fields())
    except issuers.TrustError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render((segment, form), status=400)
    flash(f"Added the {kind.label} {row.issuer}.")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/<segment>/<int:row_id>/remove")
def remove_trusted(segment: str, row_id: int):
    kind = _kind(segment)
    row = db.session.get(kind.model, row_id)
    if row is None:
        abort(404, description=f"There is no such {kind.label} (removed already?).")
    if ActionForm().validate_on_submit():
        try:
            issuers.remove(kind, row.issuer, actor=actor())
            flash(f"Removed the {kind.label} {row.issuer}.")
        except issuers.TrustError as exc:
            db.session.rollback()
            flash(f"Nothing was changed: {exc}")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/document-publishers")
def add_document_publisher():
    form = _document_form(DocumentPublisherForm(prefix="dp"))
    if not form.validate_on_submit():
        return _render(("document-publishers", form), status=400)
    try:
        rule = document_publishers.add(
            form.url_prefix.data.strip(), owner=form.owner.data, scopes=form.scopes.data.split(),
            audiences=form.audience_list(), approval_days=form.approval_days.data,
            assurance_level=form.assurance_level.data, proofing_method=form.proofing_method.data,
            actor=actor(), sensitive_confirmed=form.confirm_sensitive.data)
    except document_publishers.DocumentPublisherError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        return _render(("document-publishers", form), status=400)
    flash(f"Trusting metadata documents under {rule.prefix}, within the ceiling shown.")
    return redirect(url_for("console.trust"), 303)


@bp.post("/trust/document-publishers/<int:rule_id>/remove")
def remove_document_publisher(rule_id: int):
    rule = db.session.get(DocumentPublisher, rule_id)
    if rule is None:
        abort(404, description="There is no such document publisher (removed already?).")
    if ActionForm().validate_on_submit():
        try:
            document_publishers.remove(rule.prefix, actor=actor())
            flash(f"No longer trusting documents under {rule.prefix}.")
        except document_publishers.DocumentPublisherError as exc:
            db.session.rollback()
            flash(f"Nothing was changed: {exc}")
    return redirect(url_for("console.trust"), 303)
