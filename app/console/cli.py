"""``ostiary admin …``: the console's administrators."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.console import admins
from app.support.cli import actor, failing_on, read_password


@click.group("admin")
def admin_group():
    """Console administrators."""


@admin_group.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def admin_create(username: str, password_stdin: bool):
    password = read_password(password_stdin)
    with failing_on(admins.AdminError):
        admins.create_admin(username, password, actor())
    click.echo(f"created admin {username}")


@admin_group.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def admin_set_password(username: str, password_stdin: bool):
    """A new password; every console session of the administrator ends."""
    password = read_password(password_stdin)
    with failing_on(admins.AdminError):
        admins.set_password(username, password, actor())
    click.echo(f"changed the password of {username}; their console sessions have ended")


@admin_group.command("disable")
@click.argument("username")
@click.option("--reason", default="disabled from the command line", show_default=True)
@with_appcontext
def admin_disable(username: str, reason: str):
    """The administrator can no longer log in; every console session of theirs ends now."""
    with failing_on(admins.AdminError):
        admins.disable(username, actor(), reason)
    click.echo(f"disabled {username}; their console sessions have ended")


@admin_group.command("enable")
@click.argument("username")
@with_appcontext
def admin_enable(username: str):
    """Let a disabled administrator log in again."""
    with failing_on(admins.AdminError):
        admins.enable(username, actor())
    click.echo(f"enabled {username}")
