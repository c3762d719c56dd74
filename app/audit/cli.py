"""``ostiary audit``: verify the hash chain, export the trail as JSON Lines."""
from __future__ import annotations

import logging
import sys
from datetime import timezone

import click
from flask.cli import with_appcontext

from . import trail

log = logging.getLogger(__name__)


@click.group("audit")
def audit_group():
    """The tamper-evident audit trail."""


@audit_group.command("verify")
@with_appcontext
def verify_command():
    """Check the whole chain; exit 1 and name the first broken event if it is not intact."""
    count, broken, why = trail.verify()
    if broken is not None:
        click.echo(f"audit trail BROKEN at event {broken}: {why} ({count} events before it are intact)",
                   err=True)
        sys.exit(1)
    head = trail.head_row()
    # The last hash is the anchor to keep outside the database (see README, "Production").
    click.echo(f"audit trail intact: {count} events; last hash {head.hash if head else trail.GENESIS}")


@audit_group.command("export")
@click.option("--client", "client_id", help="Only events about this client_id.")
@click.option("--actor", help='Only events by this actor ("admin:alice", "client:…", "system").')
@click.option("--type", "event_type", help="Only events of this type (e.g. token.issued).")
@click.option("--since", type=click.DateTime(), help="Only events at or after this time (UTC if no zone).")
@with_appcontext
def export_command(client_id, actor, event_type, since):
    """Write events as JSON Lines to standard output, oldest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    n = trail.export_jsonl(sys.stdout, client_id=client_id, actor=actor, event_type=event_type,
                           since=since)
    click.echo(f"exported {n} events", err=True)
