"""Discovery (RFC 8414, OIDC Discovery), the JWKS, and the health check."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .extensions import db, limiter
from .oauth.metadata import server_metadata

bp = Blueprint("wellknown", __name__)

JWKS_MAX_AGE = 300  # shorter than the time a `next` key is published before it signs


@bp.get("/.well-known/oauth-authorization-server")
@bp.get("/.well-known/openid-configuration")
@limiter.exempt
def metadata():
    response = jsonify(server_metadata())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/jwks.json")
@limiter.exempt
def jwks():
    response = jsonify(current_app.extensions["ostiary.keys"].jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


@bp.get("/health")
@limiter.exempt
def health():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means unhealthy, never a 500
        return jsonify(status="unavailable", database=type(exc).__name__), 503
    return jsonify(status="ok", database="ok")
