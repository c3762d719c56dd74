"""The many-client form of ``ostiary registration deny`` and ``ostiary client suspend``: several
client ids, or ``--matching`` with the console inventory's search and filters.

The clients are selected by the inventory's own query (``app.registration.inventory``: the
read-only selection, one query builder for the page, its "every matching client" action and
this), so a filter selects the same clients here as there. The command lists every client it
will change and the ones it will not, and asks, unless ``--yes``; if the selection has changed
when the answer comes, nothing is changed. Then each client goes through the one lifecycle
function, its own transaction and audit event, as one at a time would.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import click

from app.extensions import db
from app.models.client import STATUSES
from app.registration import lifecycle
from app.registration.inventory import (
    FLAGS,
    LAST_USED,
    InventoryFilter,
    clients_by_id,
    count_matching,
    matching_ids,
)
from app.registration.metadata import escape_display
from app.support.cli import actor, fail

log = logging.getLogger(__name__)

FILTERS = ("search", "status", "assurance", "flag", "last_used", "unused_days")


def matching_options(command):
    """``--matching`` and the inventory's filter options (``InventoryFilter``)."""
    options = [
        click.option("--matching", is_flag=True,
                     help="Every client the filter options below select (the console inventory's search and "
                          "filters), instead of client ids."),
        click.option("--search", help="With --matching: name, owner, client ID, software ID, publisher, "
                                      "address or host contains this."),
        click.option("--status", type=click.Choice(STATUSES), help="With --matching: in this status."),
        click.option("--assurance", type=int, help="With --matching: approved at this assurance level."),
        click.option("--flag", type=click.Choice(list(FLAGS)), help="With --matching: needs this attention."),
        click.option("--last-used", type=click.Choice(list(LAST_USED)),
                     help="With --matching: last token within / not within --unused-days, or never."),
        click.option("--unused-days", type=click.IntRange(1, 3650),
                     help="With --matching: the N of --flag unused and --last-used (default 30)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass(frozen=True)
class Action:
    verb: str  # "Suspend"
    done: str  # "suspended"
    statuses: tuple[str, ...]  # the statuses it moves a client from
    consequence: str  # what it means for them, said before asking
    service: Callable


def run(action: Action, client_ids: tuple[str, ...], *, matching: bool, filters: dict, reason: str,
        yes: bool) -> None:
    """Select, list, ask (unless ``yes``), check the selection again, then change each client;
    exit status 1 if any client was refused, or any client id named could not be changed (the
    other statuses a filter also matches are only counted)."""
    ready, untouched, wanted = _select(action, client_ids, matching, filters)
    if not ready:
        for line in untouched:
            click.echo(line, err=True)
        fail(f"no client to {action.verb.lower()}")
    click.echo(f"{action.verb} {len(ready)} client{'s' if len(ready) != 1 else ''} ({action.consequence}):", err=True)
    for client in ready:
        click.echo(f"  {client.status:<9} {client.client_id}  {escape_display(client.client_name) or ''}", err=True)
    for line in untouched:
        click.echo(line, err=True)
    if not yes:
        click.confirm("Continue?", abort=True, err=True)
        if wanted is not None:
            now = matching_ids(wanted, action.statuses)
            if sorted(now) != sorted(c.client_id for c in ready):
                fail(f"the matching clients changed while you were asked ({len(ready)} then, {len(now)} now); "
                     "nothing was changed: run it again")
    ids = [client.client_id for client in ready]
    db.session.expire_all()  # each service call reads its client afresh, under its lock
    done, skipped = 0, []
    for client_id in ids:
        try:
            action.service(client_id, reason=reason, actor=actor())
            done += 1
            click.echo(f"{action.done} {client_id}")
        except lifecycle.LifecycleError as exc:
            db.session.rollback()
            skipped.append(str(exc))
            click.echo(f"skipped: {exc}", err=True)
    log.info("bulk %s from the command line: %d done, %d skipped", action.verb.lower(), done, len(skipped))
    click.echo(f"{action.done} {done} client(s)" + (f", skipped {len(skipped)}" if skipped else ""))
    if skipped or (untouched and wanted is None):
        raise SystemExit(1)


def _select(action: Action, client_ids, matching: bool, filters: dict):
    """(the clients the action applies to, lines naming those named or matched it will not
    change, the filter if ``--matching``), or ``fail`` on options that do not go together."""
    given = [name for name in FILTERS if filters.get(name) is not None]
    if matching and client_ids:
        fail("give client ids or --matching, not both")
    if not matching:
        if given:
            fail(f"--{given[0].replace('_', '-')} selects clients only with --matching")
        if not client_ids:
            fail("name at least one client id, or --matching with the filters that select them")
        ids = list(dict.fromkeys(client_ids))
        found = clients_by_id(ids)
        known = {c.client_id for c in found}
        ready = [c for c in found if c.status in action.statuses]
        untouched = [f"not changed: {c.client_id} is {c.status}: only {' or '.join(action.statuses)} clients can be "
                     f"{action.done}" for c in found if c.status not in action.statuses]
        untouched += [f"not changed: {i}: there is no such client" for i in ids if i not in known]
        return ready, untouched, None
    wanted = InventoryFilter(search=filters.get("search") or "", status=filters.get("status"),
                             assurance=filters.get("assurance"), flag=filters.get("flag"),
                             last_used=filters.get("last_used"), unused_days=filters.get("unused_days") or 30,
                             sort="oldest")
    ready = clients_by_id(matching_ids(wanted, action.statuses))
    others = count_matching(wanted) - len(ready)
    untouched = [f"not changed: {others} other matching client(s), not {' or '.join(action.statuses)}"] if others else []
    return ready, untouched, wanted
