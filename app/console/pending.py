"""Console: the pending queue, grouped by what identifies an agent and paged in whole groups
(``app.console.queries.pending_page``), with warnings for the reviewer; denying ticked
registrations, a whole group or every pending registration goes through the confirmation
page of ``app.console.bulk``."""
from __future__ import annotations

import logging

from flask import abort, render_template, request, url_for

from app.console import bp
from app.console.forms import BulkSelectForm
from app.console.queries import pending_page
from app.registration import access

log = logging.getLogger(__name__)


@bp.get("/pending")
def pending():
    """A page number that is not a positive integer is answered 400: it never shows page 1 as
    if it were the page asked for."""
    number = request.args.get("page", "1")
    if not number.isdigit() or int(number) < 1:
        abort(400, description="the page number must be a positive whole number")
    result = pending_page(int(number))
    back = url_for("console.pending", page=result.page) if result.page > 1 else url_for("console.pending")
    return render_template("console/pending.html", result=result,
                           select_form=BulkSelectForm(action="deny", back=back),
                           page_url=lambda n: url_for("console.pending", page=n))


# Who asked for a pending agent, and why (``app.registration.access``): shown where it is proofed.
bp.add_app_template_global(access.access_requests, "access_requests")
