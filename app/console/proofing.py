"""The approval, renewal and edit forms of a client's page, filled from the scope catalogue
and the approval settings: nothing the administrator must decide is decided in advance.

No proofing method is preselected; a requested scope is checked in advance only if the
catalogue marks it a safe default (``default = true``), never if it is sensitive; the expiry
and review dates proposed are APPROVAL_DAYS and REVIEW_DAYS from today, the same as
``ostiary registration approve``'s.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, request

from app.console.forms import NO_METHOD, ApprovalForm, EditApprovalForm, RenewForm
from app.models import Client
from app.registration.metadata import AUDIENCES
from app.support import clock


def initial_level(client: Client, cat) -> int:
    """The level the approval form opens at: what the client's verified publisher vouches for,
    else the lowest (``?level=`` chooses another)."""
    chosen = request.args.get("level", type=int)
    if chosen in cat.levels:
        return chosen
    if client.publisher is not None and client.publisher.assurance_level in cat.levels:
        return client.publisher.assurance_level
    return min(cat.levels)


def _proofing_choices(form, cat, *, optional: bool = False) -> None:
    form.proofing_method.choices = [NO_METHOD] + [
        (m, m.replace("_", " ").capitalize() + (" (needs an evidence reference)" if m in cat.evidence_methods else ""))
        for m in cat.proofing_methods]
    form.assurance_level.choices = ([("", "—")] if optional else []) + [
        (n, f"{n} — {v.get('name', '')}: {v.get('description', '')}") for n, v in cat.levels.items()]
    threshold = current_app.config["EVIDENCE_REQUIRED_FROM_LEVEL"]
    form.evidence.description = (f"Required by the methods marked so, and at assurance level {threshold} "
                                 "or above whatever the method." if threshold else
                                 "Required by the methods marked so.")


def _scope_notes(form, cat, scopes) -> None:
    """Per scope of the form: its catalogue description, and whether it is sensitive."""
    form.scope_notes = {s: cat.description(s) for s in scopes}
    form.sensitive_scopes = cat.sensitive(scopes)


def approval_form(client: Client, level: int, cat, formdata=None) -> ApprovalForm:
    requested = (client.client_metadata or {}).get("scope", "").split()
    candidates = requested or list(cat.scopes)
    offered = [s for s in candidates if cat.needed_level(s) <= level]
    today, config = clock.now().date(), current_app.config
    form = ApprovalForm(formdata=formdata, data=None if formdata else {
        "assurance_level": level, "version": client.version,
        "scopes": [s for s in offered if cat.is_default(s)],
        "audiences": "\n".join((client.client_metadata or {}).get(AUDIENCES, [])),
        "max_token_ttl": config["ACCESS_TOKEN_TTL"], "proofing_method": "",
        "expires_at": today + timedelta(days=config["APPROVAL_DAYS"]),
        "review_at": today + timedelta(days=config["REVIEW_DAYS"])})
    _proofing_choices(form, cat)
    form.scopes.choices = [(s, s) for s in offered]
    form.blocked_scopes = [(s, cat.needed_level(s)) for s in candidates if cat.needed_level(s) > level]
    form.free_scopes = not requested and not cat.restrict
    _scope_notes(form, cat, offered)
    form.expires_at.description = f"Proposed: {config['APPROVAL_DAYS']} days from today (OSTIARY_APPROVAL_DAYS)."
    form.review_at.description = f"Proposed: {config['REVIEW_DAYS']} days from today (OSTIARY_REVIEW_DAYS)."
    return form


def renew_form(client: Client, cat, formdata=None) -> RenewForm:
    approval, config = client.approval, current_app.config
    review = clock.now().date() + timedelta(days=config["REVIEW_DAYS"])
    form = RenewForm(formdata=formdata, prefix="renew-", data=None if formdata else {
        "assurance_level": approval.assurance_level if approval else min(cat.levels), "proofing_method": "",
        "review_at": min(review, approval.expires_at.date()) if approval else review})
    _proofing_choices(form, cat)
    form.review_at.description = f"Proposed: {config['REVIEW_DAYS']} days from today (OSTIARY_REVIEW_DAYS)."
    return form


def edit_form(client: Client, cat, formdata=None) -> EditApprovalForm:
    approval = client.approval
    requested = (client.client_metadata or {}).get("scope", "").split()
    candidates = list(dict.fromkeys([*approval.scopes, *requested]))
    form = EditApprovalForm(formdata=formdata, prefix="edit-", data=None if formdata else {
        "scopes": list(approval.scopes), "audiences": "\n".join(approval.audiences),
        "max_token_ttl": approval.max_token_ttl, "expires_at": approval.expires_at.date(),
        "proofing_method": "", "assurance_level": None})
    _proofing_choices(form, cat, optional=True)
    form.scopes.choices = [(s, s) for s in candidates]
    _scope_notes(form, cat, candidates)
    return form
