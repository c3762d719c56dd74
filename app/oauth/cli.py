"""``ostiary task …``: thin commands over the token services."""
from __future__ import annotations

import logging

import click
from flask.cli import with_appcontext

from app.oauth import tokens
from app.support.cli import actor, failing_on

log = logging.getLogger(__name__)


@click.group("task")
def task_group():
    """Agent tasks and their tokens."""


@task_group.command("end")
@click.argument("task_id")
@click.option("--outcome", type=click.Choice(["ended", "done", "failed"]), default="ended", show_default=True)
@with_appcontext
def task_end(task_id: str, outcome: str):
    """End a task: every token issued for it (and exchanged from those) is revoked now."""
    with failing_on(tokens.TaskError):
        revoked = tokens.end_task(task_id, outcome=outcome, actor=actor())
    click.echo(f"task {task_id} ended ({outcome}); {len(revoked)} token(s) revoked")
