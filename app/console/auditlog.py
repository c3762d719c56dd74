"""Console: search the audit trail, export it as JSON Lines, verify its hash chain and show
its latest signed checkpoint."""
from __future__ import annotations

import logging
from datetime import datetime, time, timedelta, timezone

from flask import Response, render_template, request, stream_with_context, url_for

from app.audit import sequencer, trail
from app.console import bp
from app.console.forms import AuditSearchForm
from app.console.queries import AUDIT_PAGE, audit_page

log = logging.getLogger(__name__)


def _filters(form: AuditSearchForm) -> dict:
    def day(value, extra_days=0):
        if value is None:
            return None
        return datetime.combine(value, time.min, tzinfo=timezone.utc) + timedelta(days=extra_days)
    return {"client_id": form.client_id.data or None, "actor": form.actor.data or None,
            "event_type": form.event_type.data or None, "since": day(form.since.data),
            "until": day(form.until.data, 1)}


@bp.get("/audit")
def audit():
    form = AuditSearchForm(request.args)
    valid = form.validate()
    events = (audit_page(trail.matching(**_filters(form), newest_first=True),
                         request.args.get("before", type=int)) if valid else [])
    older = None
    if len(events) == AUDIT_PAGE:
        args = {k: v for k, v in request.args.items() if k != "before"}
        older = url_for("console.audit", before=events[-1].id, **args)
    return render_template("console/audit.html", form=form, events=events, chain=None, older=older)


@bp.get("/audit/export.jsonl")
def audit_export():
    """JSON Lines, oldest first, with each event's hashes so the export can be checked offline."""
    form = AuditSearchForm(request.args)
    filters = _filters(form) if form.validate() else {}
    return Response(stream_with_context(trail.export_lines(**filters)), mimetype="application/jsonl",
                    headers={"Content-Disposition": 'attachment; filename="ostiary-audit.jsonl"'})


@bp.get("/audit/verify")
def audit_verify():
    count, broken, why = trail.verify()
    waiting, _ = trail.unsealed()
    return render_template("console/audit.html", form=AuditSearchForm(), events=[],
                           chain={"count": count, "broken": broken, "why": why, "waiting": waiting},
                           checkpoint=sequencer.latest())
