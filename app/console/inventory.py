"""Console: the inventory of every client, searched, filtered, sorted and paged in SQL
(``app.console.queries.inventory``), with clients to tick for a bulk action (``bulk``)."""
from __future__ import annotations

import logging

from flask import render_template, request, url_for

from app.console import bp
from app.console.forms import BulkSelectForm, InventoryFilterForm
from app.console.queries import FLAGS, LAST_USED, SORTS, InventoryFilter
from app.console.queries import inventory as inventory_page
from app.models.client import STATUSES
from app.policy import scopes as catalogue

log = logging.getLogger(__name__)


def _filter_form() -> InventoryFilterForm:
    form = InventoryFilterForm(request.args)
    form.status.choices = [("", "Any status")] + [(s, s) for s in STATUSES]
    form.assurance.choices = [("", "Any level")] + [
        (str(n), f"{n} — {v.get('name', '')}".rstrip(" —")) for n, v in catalogue.current().levels.items()]
    form.flag.choices = [("", "Any")] + list(FLAGS.items())
    form.last_used.choices = [("", "Any")] + list(LAST_USED.items())
    form.sort.choices = list(SORTS.items())
    return form


@bp.get("/inventory")
def inventory():
    """A filter that does not validate is answered 400 with its errors and no clients: a
    mistyped filter never shows an unfiltered list as if it were the answer."""
    form = _filter_form()
    if not form.validate():
        return render_template("console/inventory.html", form=form, result=None, flags=FLAGS,
                               unused_days=30, select_form=BulkSelectForm(), page_url=None), 400
    wanted = InventoryFilter(
        search=form.q.data or "", status=form.status.data or None,
        assurance=int(form.assurance.data) if form.assurance.data else None,
        flag=form.flag.data or None, last_used=form.last_used.data or None,
        unused_days=form.unused_days.data or 30, sort=form.sort.data or "newest", page=form.page.data or 1)
    result = inventory_page(wanted)
    args = {k: v for k, v in request.args.items() if k != "page" and v}

    def page_url(number: int) -> str:
        return url_for("console.inventory", page=number, **args)
    return render_template("console/inventory.html", form=form, result=result, flags=FLAGS,
                           unused_days=wanted.unused_days, page_url=page_url,
                           select_form=BulkSelectForm(back=request.full_path))
