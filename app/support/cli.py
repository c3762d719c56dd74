"""What every ``ostiary`` command shares: who acts, how a command fails, how files are read.

Each area keeps its commands beside its services (``app/<area>/cli.py``); ``app.cli`` lists them.
"""
from __future__ import annotations

import getpass
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click


def actor() -> str:
    """The audit trail's actor for a command: the operating-system user who ran it."""
    return f"cli:{getpass.getuser()}"


def fail(message: str):
    """Stop the command with one line on standard error and exit status 1."""
    click.echo(f"ostiary: error: {message}", err=True)
    sys.exit(1)


@contextmanager
def failing_on(*errors: type[Exception]):
    """A service's refusal (one of ``errors``) ends the command with ``fail`` and its message."""
    try:
        yield
    except errors as exc:
        fail(str(exc))


def read_password(from_stdin: bool) -> str:
    """A new password: one line of standard input, or asked for twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def read_json(path: str | Path):
    """A JSON file's document, or ``fail`` naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, OSError) as exc:
        fail(f"cannot read {path}: {exc}")


def emit(items, as_json: bool, line) -> None:
    """``items`` as a JSON array, or each as the one line ``line(item)`` makes of it."""
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        click.echo(line(item))
