"""Console: the pending queue, grouped by what identifies an agent, with warnings for the
reviewer; denying ticked registrations, or a whole group, goes through the confirmation
page of ``app.console.bulk``."""
from __future__ import annotations

import logging

from flask import render_template, url_for

from app.console import bp
from app.console.forms import ActionForm, BulkSelectForm
from app.console.queries import pending_groups
from app.registration import access

log = logging.getLogger(__name__)


@bp.get("/pending")
def pending():
    return render_template("console/pending.html", groups=pending_groups(),
                           select_form=BulkSelectForm(action="deny", back=url_for("console.pending")),
                           group_form=ActionForm())


# Who asked for a pending agent, and why (``app.registration.access``): shown where it is proofed.
bp.add_app_template_global(access.access_requests, "access_requests")
