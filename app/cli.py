"""The ``ostiary`` command line: a Flask CLI group over ``create_app``.

Every command that changes state calls the same service function as the console and the
HTTP endpoints; none writes models directly. Each area defines its commands beside its
services (``app/<area>/cli.py``) and this group lists them, so ``ostiary … --help`` needs no
app and no environment: the app is built when a command runs, and a missing setting is named
then.
"""
from __future__ import annotations

import secrets

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from app import StartupError, create_app
from app.audit import sequencer
from app.audit.cli import audit_group
from app.console import admins
from app.console.cli import admin_group
from app.db.schema import current_revision, head_revision
from app.oauth.cli import task_group
from app.people.cli import user_group
from app.registration.cli import client_group, iat_group, registration_group
from app.registration.documents_cli import document_group, document_publisher_group
from app.signing.cli import keys_group
from app.signing.store import ensure_keys
from app.support.cli import failing_on
from app.trust.cli import publisher_group, workload_issuer_group


def _create_cli_app():
    with failing_on(StartupError):
        return create_app(check=False)


def initialise(app) -> list[str]:
    """Apply migrations and create the first keys. Idempotent; returns what it did."""
    done = []
    with app.app_context():
        before = current_revision()
        if before != head_revision():
            upgrade(directory=app.extensions["migrate"].directory)
            done.append(f"schema migrated from {before or 'empty'} to {head_revision()}")
        if ensure_keys(app.config["SIGNING_ALG"], app.extensions["ostiary.aead"]):
            done.append(f"created {app.config['SIGNING_ALG']} signing keys (active and next)")
    return done


class OstiaryGroup(FlaskGroup):
    """Flask's group, listing only the commands added to it: Flask's own lists the app's
    ``app.cli`` commands too, and builds the app for that, even for ``--help``. Its ``--app``
    and ``--debug`` options are for other apps; ``--env-file`` stays."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = [param for param in self.params if param.name not in ("app", "debug")]

    list_commands = click.Group.list_commands
    get_command = click.Group.get_command


@click.group(cls=OstiaryGroup, create_app=_create_cli_app, add_default_commands=False,
             add_version_option=False)
def main():
    """Ostiary, the authorization server for AI agents and workloads."""


@main.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run_command(host: str, port: int):
    """Start the development server (SQLite and secrets in the instance folder)."""
    with failing_on(StartupError):
        app = create_app(dev=True, check=False)
        for line in initialise(app):
            click.echo(f" * {line}")
        with app.app_context():
            password = None
            if admins.count() == 0:
                password = secrets.token_urlsafe(18)
                admins.create_admin("admin", password, actor="system:bootstrap")
        app = create_app(dev=True, check=True)
    issuer = app.config["ISSUER"]
    click.echo(f" * Ostiary issuer: {issuer}")
    click.echo(f" * Discovery:      {issuer}/.well-known/oauth-authorization-server")
    click.echo(f" * Console:        {issuer}/console")
    if password:
        click.echo(f" * First start: log in as 'admin' with the one-time password {password}")
        click.echo("   (it is shown only now; create others with `ostiary admin create`)")
    sequencer.start(app)
    run_simple(host, port, app, threaded=True)


@main.command("init")
@with_appcontext
def init_command():
    """Apply database migrations and create signing keys (safe to run again)."""
    done = initialise(current_app._get_current_object())
    click.echo("\n".join(done) if done else "already initialised")


for _group in (admin_group, audit_group, client_group, document_group, document_publisher_group, iat_group,
               keys_group, publisher_group, registration_group, task_group, user_group, workload_issuer_group):
    main.add_command(_group)
