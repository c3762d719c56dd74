"""HTTP errors outside Authlib's endpoints answer as OAuth errors: JSON, a code, a description.

Authlib's endpoints convert their own ``OAuth2Error`` subclasses; this catches
what happens before or around them (unknown paths, oversized bodies, crashes),
so no client ever sees an HTML page or a stack trace.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {400: "invalid_request", 401: "invalid_client", 404: "not_found", 405: "invalid_request",
         413: "invalid_request", 429: "slow_down", 500: "server_error", 503: "temporarily_unavailable"}
# Also answered by the machine endpoints' front (app.oauth.front), which runs outside Flask.
INTERNAL = "internal error; nothing was changed"


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes"


def json_error(status: int, error: str, description: str, headers: dict | None = None):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _wants_html() -> bool:
    return request.path.startswith("/console")


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_html():
            return exc
        if exc.code == 413:
            description = too_large(app.config["MAX_BODY_BYTES"])
        elif exc.code == 429:
            description = f"rate limit exceeded ({exc.description}); retry later"
        else:
            description = exc.description or exc.name
        kept = {k: v for k, v in exc.get_headers() if k in ("Allow", "Retry-After")}
        return json_error(exc.code or 500, CODES.get(exc.code, "invalid_request"), description, kept)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        from .extensions import db
        db.session.rollback()
        if _wants_html():
            return "Internal error; the administrator can find it in the server log.", 500
        return json_error(500, "server_error", INTERNAL)
