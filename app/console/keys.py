"""Console: the signing keys, and rotating them through ``app.signing.rotate``."""
from __future__ import annotations

import logging

from flask import current_app, flash, redirect, render_template, url_for
from sqlalchemy import select

from app import signing as key_service
from app.console import bp
from app.console.auth import actor
from app.console.forms import ActionForm
from app.extensions import db
from app.models import SigningKey

log = logging.getLogger(__name__)


@bp.get("/keys")
def keys():
    rows = db.session.execute(select(SigningKey).order_by(SigningKey.created_at.desc())).scalars().all()
    return render_template("console/keys.html", keys=rows, form=ActionForm())


@bp.post("/keys/rotate")
def rotate_keys():
    if ActionForm().validate_on_submit():
        config = current_app.config
        change = key_service.rotate(config["SIGNING_ALG"], current_app.extensions["ostiary.aead"],
                                    actor(), config["ACCESS_TOKEN_TTL"])
        flash(f"Rotated: {change['active']} now signs; {change['next']} is published as next.")
    return redirect(url_for("console.keys"), 303)
