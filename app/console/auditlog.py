"""Console: search the audit trail, export it as JSON Lines, verify its hash chain and show
its latest signed checkpoint; and the timeline of one client, which its page includes."""
from __future__ import annotations

import logging
from datetime import datetime, time, timedelta, timezone

from flask import Response, render_template, request, stream_with_context, url_for

from app.audit import sequencer, trail
from app.console import bp
from app.console.forms import AuditSearchForm
from app.console.queries import AUDIT_PAGE, audit_page, client_timeline

log = logging.getLogger(__name__)


def _filters(form: AuditSearchForm) -> dict:
    def day(value, extra_days=0):
        if value is None:
            return None
        return datetime.combine(value, time.min, tzinfo=timezone.utc) + timedelta(days=extra_days)
    return {"client_id": form.client_id.data or None, "actor": form.actor.data or None,
            "event_type": form.event_type.data or None, "since": day(form.since.data),
            "until": day(form.until.data, 1)}


def _valid(form: AuditSearchForm) -> bool:
    """The fields, and a range that ends after it starts. A refused search answers nothing
    (never the whole trail as if unfiltered)."""
    if not form.validate():
        return False
    if form.since.data and form.until.data and form.until.data < form.since.data:
        form.until.errors.append("The end date is before the start date.")
        return False
    return True


def _refused(form: AuditSearchForm):
    return render_template("console/audit.html", form=form, events=[], chain=None, older=None,
                           refused=True), 400


@bp.get("/audit")
def audit():
    form = AuditSearchForm(request.args)
    if not _valid(form):
        return _refused(form)
    events = audit_page(trail.matching(**_filters(form), newest_first=True), request.args.get("before", type=int))
    older = None
    if len(events) == AUDIT_PAGE:
        args = {k: v for k, v in request.args.items() if k != "before"}
        older = url_for("console.audit", before=events[-1].id, **args)
    return render_template("console/audit.html", form=form, events=events, chain=None, older=older)


@bp.get("/audit/export.jsonl")
def audit_export():
    """JSON Lines, oldest first, with each event's hashes so the export can be checked offline.
    A malformed filter is answered 400 with the search page and its errors, and exports nothing."""
    form = AuditSearchForm(request.args)
    if not _valid(form):
        return _refused(form)
    return Response(stream_with_context(trail.export_lines(**_filters(form))), mimetype="application/jsonl",
                    headers={"Content-Disposition": 'attachment; filename="ostiary-audit.jsonl"'})


@bp.get("/audit/verify")
def audit_verify():
    count, broken, why = trail.verify()
    waiting, _ = trail.unsealed()
    return render_template("console/audit.html", form=AuditSearchForm(), events=[],
                           chain={"count": count, "broken": broken, "why": why, "waiting": waiting},
                           checkpoint=sequencer.latest())


@bp.app_template_global("client_timeline")
def _client_timeline(client_id: str):
    """For ``console/client_timeline.html``: (newest events about the client, whether there
    are older ones), so the client page shows its history without its view knowing of it."""
    return client_timeline(client_id)
