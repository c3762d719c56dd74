"""HTTP errors outside Authlib's endpoints answer as OAuth errors: JSON, a code, a description.

Authlib's endpoints convert their own ``OAuth2Error`` subclasses; this catches
what happens before or around them (unknown paths, oversized bodies, crashes),
so no client ever sees an HTML page or a stack trace. Every JSON answer, Authlib's
included, takes its shape from ``json_answer``.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {400: "invalid_request", 401: "invalid_client", 404: "not_found", 405: "invalid_request",
         413: "invalid_request", 429: "slow_down", 500: "server_error", 503: "temporarily_unavailable"}
# Also answered by the machine endpoints' front (app.oauth.front), which runs outside Flask.
INTERNAL = "internal error; nothing was changed"
# RFC 6749 §5.1 and §5.2: JSON, never cached, whether the answer is a token or a refusal.
JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes"


def json_answer(status: int, body: dict, headers=()) -> tuple[int, bytes, list[tuple[str, str]]]:
    """A JSON answer as (status, body, headers), the shape Authlib's endpoints give and the
    machine front (``app.oauth.front``, outside Flask) sends. ``headers`` (a challenge,
    ``Allow``) add to ``JSON_HEADERS``, or replace the one of the same name."""
    given = {name.lower() for name, _ in headers}
    return status, json.dumps(body).encode(), [*(h for h in JSON_HEADERS if h[0].lower() not in given),
                                                *headers]


def error_answer(status: int, error: str, description: str, headers=()):
    """An error object (RFC 6749 §5.2) as ``json_answer``."""
    return json_answer(status, {"error": error, "error_description": description}, headers)


def as_response(answer: tuple[int, bytes, list[tuple[str, str]]]) -> Response:
    """A ``json_answer`` as the Flask response a view or an error handler returns."""
    status, body, headers = answer
    return Response(body, status, headers)


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
        kept = [(k, v) for k, v in exc.get_headers() if k in ("Allow", "Retry-After")]
        error = CODES.get(exc.code, "invalid_request")
        return as_response(error_answer(exc.code or 500, error, description, kept))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        from app.extensions import db
        db.session.rollback()
        if _wants_html():
            return "Internal error; the administrator can find it in the server log.", 500
        return as_response(error_answer(500, "server_error", INTERNAL))
