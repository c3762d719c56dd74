"""``ostiary keys …``: Ostiary's own signing keys."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.models import SigningKey
from app.signing.store import rotate
from app.support.cli import actor, emit


@click.group("keys")
def keys_group():
    """Ostiary's signing keys (active, next, retiring)."""


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def keys_list(as_json: bool):
    rows = db.session.execute(select(SigningKey).order_by(SigningKey.created_at)).scalars().all()
    items = [{"kid": k.kid, "alg": k.alg, "state": k.state, "created_at": k.created_at.isoformat()}
             for k in rows]
    emit(items, as_json, lambda k: f"{k['state']:<9} {k['alg']:<6} {k['kid']}  created {k['created_at']}")


@keys_group.command("rotate")
@with_appcontext
def keys_rotate():
    """Promote the next key to active; the active key keeps verifying until its tokens expire."""
    change = rotate(current_app.config["SIGNING_ALG"], current_app.extensions["ostiary.aead"],
                    actor(), current_app.config["ACCESS_TOKEN_TTL"])
    click.echo(f"active: {change['active']}\nnext:   {change['next']}")
    for kid in change["retiring"]:
        click.echo(f"retiring: {kid}")
    for kid in change["retired"]:
        click.echo(f"retired:  {kid}")
