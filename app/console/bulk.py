"""Console: one action (deny, suspend) on many clients, ticked in the pending queue or the
inventory, or every client a page matches, always in two steps.

``POST /console/bulk/confirm`` changes nothing: it answers a page naming what will happen to
which clients, and which of the ticked ones it will not touch and why. Only its own form,
carrying exactly the clients it named and a reason, goes on to ``POST /console/bulk``, which
calls the one lifecycle function per client (``app.registration.lifecycle``), so each client
gets its own transaction and its own audit event. A client whose state changed between the
two steps is skipped and named, never changed by surprise.

``POST /console/bulk/confirm-matching`` does the same for every client a page matches, on
every page: every pending registration, one group of the queue, or every client the
inventory's filter matches (``Match``). Its page says how many, names the first few, and
carries the match itself with the count and a digest of the clients it found. At
``POST /console/bulk/matching`` the match is run again; if it finds other clients than the
confirmation named (one more, one fewer, or another in its place), nothing is changed and
the new set is shown to confirm again; otherwise the action applies to exactly those.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from flask import flash, redirect, render_template, url_for
from werkzeug.datastructures import MultiDict

from app.console import bp
from app.console.auth import actor
from app.console.forms import (
    BulkConfirmForm,
    BulkMatchConfirmForm,
    BulkMatchForm,
    BulkSelectForm,
)
from app.console.inventory import parse_filter
from app.console.queries import pending_group
from app.extensions import db
from app.models.client import ACTIVE, PENDING
from app.registration import lifecycle
from app.registration.inventory import (
    FLAGS,
    LAST_USED,
    InventoryFilter,
    clients_by_id,
    count_matching,
    matching_ids,
)

log = logging.getLogger(__name__)

MAX_BULK = 500  # clients per bulk action: a page of the queue or a few of the inventory's
SHOWN = 10  # of a match, the clients its confirmation names; it counts the rest


@dataclass(frozen=True)
class Action:
    name: str
    verb: str  # "Deny"
    done: str  # "denied"
    applies_to: tuple[str, ...]  # the statuses it moves a client from
    service: Callable


ACTIONS = {
    "deny": Action("deny", "Deny", "denied", (PENDING,), lifecycle.deny),
    "suspend": Action("suspend", "Suspend", "suspended", (ACTIVE,), lifecycle.suspend),
}


def _back(value: str | None) -> str:
    """Where to return: a console page this form came from, never another site."""
    if value and value.startswith(bp.url_prefix + "/") and not value.startswith("//") and "\\" not in value:
        return value.rstrip("?")
    return url_for("console.pending")


def _ids(values) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _confirmation(action: Action, client_ids: list[str], back: str, form: BulkConfirmForm | None = None,
                  status: int = 200):
    clients = clients_by_id(client_ids)
    known = {c.client_id for c in clients}
    ready = [c for c in clients if c.status in action.applies_to]
    skipped = [c for c in clients if c.status not in action.applies_to]
    unknown = [i for i in client_ids if i not in known]
    if form is None:
        form = BulkConfirmForm(action=action.name, client_ids=" ".join(c.client_id for c in ready), back=back)
    return render_template("console/bulk_confirm.html", action=action, ready=ready, skipped=skipped,
                           unknown=unknown, form=form, back=back), status


@bp.post("/bulk/confirm")
def bulk_confirm():
    """The confirmation page for the ticked clients; nothing is changed here."""
    form = BulkSelectForm()
    back = _back(form.back.data)
    if not form.validate_on_submit():
        problems = [e for errors in form.errors.values() for e in errors]
        flash("Nothing was changed: " + " ".join(problems or ["the form was not valid; reload the page."]))
        return redirect(back, 303)
    client_ids = _ids(form.client_id.data)
    if len(client_ids) > MAX_BULK:
        flash(f"Nothing was changed: at most {MAX_BULK} clients at a time ({len(client_ids)} were selected).")
        return redirect(back, 303)
    return _confirmation(ACTIONS[form.action.data], client_ids, back)


@bp.post("/bulk")
def bulk_apply():
    """Apply the confirmed action to exactly the clients the confirmation page named."""
    form = BulkConfirmForm()
    back = _back(form.back.data)
    action = ACTIONS.get(form.action.data or "")
    client_ids = _ids((form.client_ids.data or "").split())
    if action is None or not client_ids or len(client_ids) > MAX_BULK:
        flash("Nothing was changed: the confirmation did not name an action and its clients; start again.")
        return redirect(back, 303)
    if not form.validate_on_submit():
        return _confirmation(action, client_ids, back, form=form, status=400)
    return _apply(action, client_ids, form.reason.data, back)


def _apply(action: Action, client_ids: list[str], reason: str, back: str):
    """The action on each client in turn, each its own transaction and audit event; a client
    the lifecycle refuses (its state changed meanwhile) is skipped and named."""
    done, skipped = 0, []
    for client_id in client_ids:
        try:
            action.service(client_id, reason=reason, actor=actor())
            done += 1
        except lifecycle.LifecycleError as exc:
            db.session.rollback()
            skipped.append(str(exc))
    log.info("bulk %s by %r: %d done, %d skipped", action.name, actor(), done, len(skipped))
    flash(f"{action.done.capitalize()} {done} client{'s' if done != 1 else ''}."
          + (f" Skipped {len(skipped)}: {'; '.join(skipped)}" if skipped else ""))
    return redirect(back, 303)


# ---- every matching client ----------------------------------------------------------------------

class MatchError(ValueError):
    """The match cannot be run; the message says why, for a person."""


@dataclass(frozen=True)
class Match:
    """The clients a match selects now, for one action: ``ready`` those it applies to (in
    the page's order), ``others`` how many more match but are in another status."""
    what: str  # in words, for the confirmation: "the pending registrations"
    ready: list[str]
    others: int

    @property
    def digest(self) -> str:
        """The set of ``ready``, whatever its order: what the confirmation saw."""
        return hashlib.sha256("\n".join(sorted(self.ready)).encode()).hexdigest()


def resolve(action: Action, match: str) -> Match:
    """The clients ``match`` selects now: ``pending`` (every pending registration),
    ``group:KEY`` (a group of the queue, ``queries.pending_group``) or ``inventory:QUERY``
    (the inventory's filter, as its query string). More than ``MAX_BULK`` is refused."""
    kind, _, rest = match.partition(":")
    if kind == "pending" and not rest:
        wanted = InventoryFilter(status=PENDING, sort="oldest")
        what = "the pending registrations"
    elif kind == "group" and rest:
        group = pending_group(rest)
        if group is None:
            raise MatchError("that group has no pending registration any more")
        ready = group.client_ids if PENDING in action.applies_to else []
        return _bounded(Match(f"the registrations of the group {_describe_group(group)}", ready,
                              group.size - len(ready)))
    elif kind == "inventory":
        form, wanted = parse_filter(MultiDict(parse_qsl(rest)))
        if wanted is None:
            problems = [f"{form[name].label.text}: {' '.join(errors)}" for name, errors in form.errors.items()]
            raise MatchError("the inventory's filter is not valid (" + "; ".join(problems) + ")")
        what = "the clients the inventory's filter matches" + _describe_filter(wanted)
    else:
        raise MatchError("the selection is not one this console makes; start again from its page")
    count = count_matching(wanted, action.applies_to)
    if count > MAX_BULK:
        raise MatchError(f"{count} clients match; at most {MAX_BULK} at a time: narrow the selection")
    return Match(what, matching_ids(wanted, action.applies_to), count_matching(wanted) - count)


def _bounded(found: Match) -> Match:
    """``found``, unless it is more than one bulk action takes."""
    if len(found.ready) > MAX_BULK:
        raise MatchError(f"{len(found.ready)} clients match; at most {MAX_BULK} at a time: narrow the selection")
    return found


def _describe_group(group) -> str:
    """A group of the queue as its heading names it (templates/console/pending.html)."""
    if group.verified:
        return f"of verified publisher {group.publisher}" + (f", software {group.software_id}" if group.software_id else "")
    parts = [f"claims software {group.software_id}" if group.software_id else None,
             f"host {group.host}" if group.host else None, f"from {group.address}" if group.address else None]
    return "self-asserted" + "".join(f", {part}" for part in parts if part)


def _describe_filter(wanted: InventoryFilter) -> str:
    """The inventory's filter in words, so the confirmation says what was matched."""
    parts = [f"search “{wanted.search.strip()}”" if wanted.search.strip() else None,
             f"status {wanted.status}" if wanted.status else None,
             f"assurance level {wanted.assurance}" if wanted.assurance is not None else None,
             f"needs attention: {FLAGS[wanted.flag]}" if wanted.flag else None,
             f"last token: {LAST_USED[wanted.last_used]}" if wanted.last_used else None]
    if (wanted.flag == "unused" or wanted.last_used in ("within", "not_within")):
        parts.append(f"N = {wanted.unused_days} days")
    shown = [part for part in parts if part]
    return f" ({', '.join(shown)})" if shown else " (no filter: every client)"


def _match_confirmation(action: Action, found: Match, match: str, back: str,
                        form: BulkMatchConfirmForm | None = None, status: int = 200, changed: str | None = None):
    if form is None:
        form = BulkMatchConfirmForm(action=action.name, match=match, back=back)
    # what this page names, also over the values a form posted again carries (``raw_data``)
    form.count.data, form.count.raw_data, form.digest.data = len(found.ready), [str(len(found.ready))], found.digest
    return render_template("console/bulk_confirm.html", action=action, ready=clients_by_id(found.ready[:SHOWN]),
                           count=len(found.ready), more=max(0, len(found.ready) - SHOWN), match=found,
                           skipped=[], unknown=[], form=form, back=back, changed=changed,
                           apply_to=url_for("console.bulk_apply_matching")), status


@bp.post("/bulk/confirm-matching")
def bulk_confirm_matching():
    """The confirmation page for every client a page matches; nothing is changed here."""
    form = BulkMatchForm()
    back = _back(form.back.data)
    if not form.validate_on_submit():
        problems = [e for errors in form.errors.values() for e in errors]
        flash("Nothing was changed: " + " ".join(problems or ["the form was not valid; reload the page."]))
        return redirect(back, 303)
    action = ACTIONS[form.action.data]
    try:
        found = resolve(action, form.match.data)
    except MatchError as exc:
        flash(f"Nothing was changed: {exc}.")
        return redirect(back, 303)
    return _match_confirmation(action, found, form.match.data, back)


@bp.post("/bulk/matching")
def bulk_apply_matching():
    """Apply the confirmed action to every client the match selects now, if that is exactly
    the set the confirmation named; otherwise show the new set and change nothing."""
    form = BulkMatchConfirmForm()
    back = _back(form.back.data)
    action = ACTIONS.get(form.action.data or "")
    if action is None or not form.match.data:
        flash("Nothing was changed: the confirmation did not name an action and its clients; start again.")
        return redirect(back, 303)
    try:
        found = resolve(action, form.match.data)
    except MatchError as exc:
        flash(f"Nothing was changed: {exc}.")
        return redirect(back, 303)
    if not form.validate_on_submit():
        return _match_confirmation(action, found, form.match.data, back, form=form, status=400)
    if (form.count.data, form.digest.data) != (len(found.ready), found.digest):
        return _match_confirmation(
            action, found, form.match.data, back, form=form, status=409,
            changed=f"The clients that match changed after the confirmation was shown ({form.count.data} "
                    f"then, {len(found.ready)} now, or others in their place): nothing was changed. "
                    "Check them below and confirm again.")
    return _apply(action, found.ready, form.reason.data, back)
