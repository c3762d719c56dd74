"""Console: the inventory of every client, searched, filtered, sorted and paged in SQL
(``app.registration.inventory.inventory``), with clients to tick, or every client the filter
matches, for a bulk action (``bulk``)."""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import render_template, request, url_for

from app.console import bp
from app.console.forms import BulkSelectForm, InventoryFilterForm
from app.models.client import STATUSES
from app.policy import scopes as catalogue
from app.registration.inventory import FLAGS, LAST_USED, SORTS, InventoryFilter
from app.registration.inventory import inventory as inventory_page

log = logging.getLogger(__name__)

FILTER_FIELDS = ("q", "status", "assurance", "flag", "last_used", "unused_days", "sort")


def _filter_form(args) -> InventoryFilterForm:
    form = InventoryFilterForm(args)
    form.status.choices = [("", "Any status")] + [(s, s) for s in STATUSES]
    form.assurance.choices = [("", "Any level")] + [
        (str(n), f"{n} — {v.get('name', '')}".rstrip(" —")) for n, v in catalogue.current().levels.items()]
    form.flag.choices = [("", "Any")] + list(FLAGS.items())
    form.last_used.choices = [("", "Any")] + list(LAST_USED.items())
    form.sort.choices = list(SORTS.items())
    return form


def parse_filter(args) -> tuple[InventoryFilterForm, InventoryFilter | None]:
    """The inventory's filter in ``args`` (a query string's MultiDict): the form, and what it
    asks for, None if it does not validate. The page and every "every matching client"
    action read it here, so that they select the same clients."""
    form = _filter_form(args)
    if not form.validate():
        return form, None
    return form, InventoryFilter(
        search=form.q.data or "", status=form.status.data or None,
        assurance=int(form.assurance.data) if form.assurance.data else None,
        flag=form.flag.data or None, last_used=form.last_used.data or None,
        unused_days=form.unused_days.data or 30, sort=form.sort.data or "newest", page=form.page.data or 1)


def filter_query(args) -> str:
    """The filter part of ``args`` as a query string (no page, no empty values): what an
    "every matching client" action carries to its confirmation."""
    return urlencode([(k, v) for k, v in args.items(multi=True) if k != "page" and k in FILTER_FIELDS and v])


@bp.get("/inventory")
def inventory():
    """A filter that does not validate is answered 400 with its errors and no clients: a
    mistyped filter never shows an unfiltered list as if it were the answer."""
    form, wanted = parse_filter(request.args)
    if wanted is None:
        return render_template("console/inventory.html", form=form, result=None, flags=FLAGS,
                               unused_days=30, select_form=BulkSelectForm(), page_url=None), 400
    result = inventory_page(wanted)
    args = {k: v for k, v in request.args.items() if k != "page" and v}

    def page_url(number: int) -> str:
        return url_for("console.inventory", page=number, **args)
    return render_template("console/inventory.html", form=form, result=result, flags=FLAGS,
                           unused_days=wanted.unused_days, page_url=page_url,
                           select_form=BulkSelectForm(back=request.full_path),
                           match="inventory:" + filter_query(request.args))
