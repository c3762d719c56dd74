"""The ``ostiary`` command line: a Flask CLI group over ``create_app``.

Every command that changes state calls the same service function as the
console and the HTTP endpoints; none writes models directly.
"""
from __future__ import annotations

import getpass
import json
import secrets
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import StartupError, create_app


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def fail(message: str):
    click.echo(f"ostiary: error: {message}", err=True)
    sys.exit(1)


def _create_cli_app():
    try:
        return create_app(check=False)
    except StartupError as exc:
        fail(str(exc))


def initialise(app) -> list[str]:
    """Apply migrations and create the first keys. Idempotent; returns what it did."""
    from flask_migrate import upgrade

    from .keys import ensure_keys
    from .migrations_state import current_revision, head_revision
    done = []
    with app.app_context():
        before = current_revision()
        if before != head_revision():
            upgrade(directory=app.extensions["migrate"].directory)
            done.append(f"schema migrated from {before or 'empty'} to {head_revision()}")
        if ensure_keys(app.config["SIGNING_ALG"], app.extensions["ostiary.aead"]):
            done.append(f"created {app.config['SIGNING_ALG']} signing keys (active and next)")
    return done


@click.group(cls=FlaskGroup, create_app=_create_cli_app, add_default_commands=False,
             add_version_option=False)
def main():
    """Ostiary, the authorization server for AI agents and workloads."""


@main.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run_command(host: str, port: int):
    """Start the development server (SQLite and secrets in the instance folder)."""
    from .admins import count, create_admin
    try:
        app = create_app(dev=True, check=False)
        for line in initialise(app):
            click.echo(f" * {line}")
        with app.app_context():
            password = None
            if count() == 0:
                password = secrets.token_urlsafe(18)
                create_admin("admin", password, actor="system:bootstrap")
        app = create_app(dev=True, check=True)
    except StartupError as exc:
        fail(str(exc))
    issuer = app.config["ISSUER"]
    click.echo(f" * Ostiary issuer: {issuer}")
    click.echo(f" * Discovery:      {issuer}/.well-known/oauth-authorization-server")
    click.echo(f" * Console:        {issuer}/console")
    if password:
        click.echo(f" * First start: log in as 'admin' with the one-time password {password}")
        click.echo("   (it is shown only now; create others with `ostiary admin create`)")
    from werkzeug.serving import run_simple
    from .audit import sequencer
    sequencer.start(app)
    run_simple(host, port, app, threaded=True)


def register_commands(app) -> None:
    from .audit.cli import audit_group
    from .oauth.cli import COMMANDS as token_commands
    from .registration.cli import COMMANDS as registration_commands
    for command in (init_command, keys_group, admin_group, audit_group, *registration_commands,
                    *token_commands):
        app.cli.add_command(command)


@click.command("init")
@with_appcontext
def init_command():
    """Apply database migrations and create signing keys (safe to run again)."""
    done = initialise(current_app._get_current_object())
    click.echo("\n".join(done) if done else "already initialised")


@click.group("keys")
def keys_group():
    """Signing keys."""


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def keys_list(as_json: bool):
    from sqlalchemy import select

    from .extensions import db
    from .models import SigningKey
    rows = db.session.execute(select(SigningKey).order_by(SigningKey.created_at)).scalars().all()
    items = [{"kid": k.kid, "alg": k.alg, "state": k.state, "created_at": k.created_at.isoformat()}
             for k in rows]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        click.echo(f"{item['state']:<9} {item['alg']:<6} {item['kid']}  created {item['created_at']}")


@keys_group.command("rotate")
@with_appcontext
def keys_rotate():
    """Promote the next key to active; the active key keeps verifying until its tokens expire."""
    from .keys import rotate
    change = rotate(current_app.config["SIGNING_ALG"], current_app.extensions["ostiary.aead"],
                    cli_actor(), current_app.config["ACCESS_TOKEN_TTL"])
    click.echo(f"active: {change['active']}\nnext:   {change['next']}")
    for kid in change["retiring"]:
        click.echo(f"retiring: {kid}")
    for kid in change["retired"]:
        click.echo(f"retired:  {kid}")


@click.group("admin")
def admin_group():
    """Console administrators."""


@admin_group.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def admin_create(username: str, password_stdin: bool):
    from .admins import create_admin
    password = _read_password(password_stdin)
    _admin_change(lambda: create_admin(username, password, cli_actor()), f"created admin {username}")


@admin_group.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def admin_set_password(username: str, password_stdin: bool):
    """A new password; every console session of the administrator ends."""
    from .admins import set_password
    password = _read_password(password_stdin)
    _admin_change(lambda: set_password(username, password, cli_actor()),
                  f"changed the password of {username}; their console sessions have ended")


@admin_group.command("disable")
@click.argument("username")
@click.option("--reason", default="disabled from the command line", show_default=True)
@with_appcontext
def admin_disable(username: str, reason: str):
    """The administrator can no longer log in; every console session of theirs ends now."""
    from .admins import disable
    _admin_change(lambda: disable(username, cli_actor(), reason),
                  f"disabled {username}; their console sessions have ended")


@admin_group.command("enable")
@click.argument("username")
@with_appcontext
def admin_enable(username: str):
    """Let a disabled administrator log in again."""
    from .admins import enable
    _admin_change(lambda: enable(username, cli_actor()), f"enabled {username}")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _admin_change(change, done: str) -> None:
    from .admins import AdminError
    try:
        change()
    except AdminError as exc:
        fail(str(exc))
    click.echo(done)
