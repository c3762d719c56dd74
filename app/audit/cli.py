"""``ostiary audit``: seal and verify the hash chain, print its signed checkpoint, export the
trail as JSON Lines."""
from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import click
from flask.cli import with_appcontext
from joserfc.jwk import KeySet

from app.audit import sequencer, trail

log = logging.getLogger(__name__)


@click.group("audit")
def audit_group():
    """The tamper-evident audit trail."""


@audit_group.command("seal")
@with_appcontext
def seal_command():
    """Seal every event waiting for the sequencer now, and sign a checkpoint of the chain."""
    n = sequencer.seal_all(checkpoint=True)
    click.echo(f"sealed {n} events")


@audit_group.command("checkpoint")
@with_appcontext
def checkpoint_command():
    """Print the latest signed checkpoint as JSON (seal first, so it covers every event
    committed until now). Keep it where the database's operators cannot change it."""
    sequencer.seal_all(checkpoint=True)
    latest = sequencer.latest()
    if latest is None:
        click.echo("no checkpoint: the trail is empty", err=True)
        sys.exit(1)
    click.echo(json.dumps(latest, indent=2))


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="A checkpoint kept from `ostiary audit checkpoint` (its JSON, or the JWS alone); "
                   "the trail must still hold what it signed.")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False),
              help="Verify the checkpoint with this key set (the issuer's JWKS, kept by the auditor) "
                   "instead of the signing keys the key-encryption key opens.")
@with_appcontext
def verify_command(checkpoint_file, jwks_file):
    """Check the whole chain; exit 1 and name the first broken event if it is not intact."""
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = sequencer.read_checkpoint(_jws(checkpoint_file), _keys(jwks_file))
        except (sequencer.CheckpointError, ValueError) as exc:
            click.echo(f"audit checkpoint REFUSED: {exc}", err=True)
            sys.exit(1)
    count, broken, why = trail.verify(checkpoint)
    if broken is not None:
        click.echo(f"audit trail BROKEN at event {broken}: {why} ({count} events before it are intact)",
                   err=True)
        sys.exit(1)
    head = trail.head_row()
    waiting, oldest = trail.unsealed()
    against = f"; consistent with checkpoint {checkpoint['seq']}" if checkpoint else ""
    click.echo(f"audit trail intact: {count} events sealed; last hash {head.hash if head else trail.GENESIS}"
               f"{against}")
    if waiting:
        click.echo(f"{waiting} events wait for the sequencer (the oldest at {oldest.isoformat()})")


def _jws(path: str) -> str:
    text = (sys.stdin.read() if path == "-" else Path(path).read_text()).strip()
    if text.startswith("{"):
        try:
            return json.loads(text)["checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise ValueError("the file is JSON but holds no \"checkpoint\"") from None
    return text


def _keys(path: str | None) -> KeySet | None:
    if path is None:
        return None
    try:
        return KeySet.import_key_set(json.loads(Path(path).read_text()))
    except Exception as exc:  # noqa: BLE001 (any unreadable key set is the same refusal)
        raise ValueError(f"cannot read the key set in {path}: {exc}") from None


class Moment(click.ParamType):
    """An ISO 8601 date or date and time (``2026-03-01``, ``2026-03-01T12:00``,
    ``2026-03-01T12:00:00+02:00``, ``…Z``), UTC when it names no zone. A date alone stands
    for its whole day: as ``--since``, from its first moment; as ``--until``, to its last
    (``end_of_day``). Anything else is refused with the forms it accepts."""

    name = "date"

    def __init__(self, end_of_day: bool = False):
        self.end_of_day = end_of_day

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:  # YYYY-MM-DD
                moment = datetime.combine(date.fromisoformat(text), time.min)
                if self.end_of_day:
                    moment += timedelta(days=1)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date: give YYYY-MM-DD, or a date and time such as "
                      "2026-03-01T12:00:00 (UTC), 2026-03-01T12:00:00+02:00 or 2026-03-01T10:00:00Z",
                      param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@audit_group.command("export")
@click.option("--client", "client_id", help="Only events about this client_id.")
@click.option("--actor", help='Only events by this actor ("admin:alice", "client:…", "system").')
@click.option("--type", "event_type", help="Only events of this type (e.g. token.issued).")
@click.option("--since", type=Moment(), help="Only events at or after this time (a date: from its start; "
                                             "UTC if no zone).")
@click.option("--until", type=Moment(end_of_day=True),
              help="Only events before this time (a date: up to its end, inclusive; UTC if no zone).")
@with_appcontext
def export_command(client_id, actor, event_type, since, until):
    """Write events as JSON Lines to standard output, oldest first."""
    if since is not None and until is not None and until <= since:
        raise click.BadParameter(f"--until ({until.isoformat()}) is not after --since ({since.isoformat()})",
                                 param_hint="'--until'")
    n = trail.export_jsonl(sys.stdout, client_id=client_id, actor=actor, event_type=event_type,
                           since=since, until=until)
    click.echo(f"exported {n} events", err=True)
