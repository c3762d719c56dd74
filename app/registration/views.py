"""HTTP endpoints: POST /register (RFC 7591 §3) and GET/PUT/DELETE /register/<client_id> (RFC 7592 §2).

Thin views over ``service``: parse, call, answer. Authlib's RFC 7591/7592
endpoint classes assume a registration is a finished client; here it is a
pending request for trust, with its own status, caps and policy, so the views
are written against the service instead and answer Authlib's error classes.
"""
from __future__ import annotations

import logging

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, current_app, request

from app.extensions import csrf, limiter
from app.http.errors import as_response, json_answer
from app.registration import service
from app.registration.errors import InvalidRequestError
from app.support.untrusted_json import UntrustedJSONError, loads

log = logging.getLogger(__name__)

bp = Blueprint("registration", __name__)
csrf.exempt(bp)  # bearer-token and anonymous JSON endpoints: no cookies, no CSRF

MAX_DEPTH, MAX_ITEMS = 8, 100
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.post("/register")
@limiter.limit(lambda: current_app.config["REGISTRATION_RATE_LIMIT"])
def register():
    try:
        token = _bearer_token()
        reg = service.register(_json_body(), address=request.remote_addr, initial_access_token=token)
    except OAuth2Error as exc:
        return as_response(json_answer(*exc()))
    return as_response(json_answer(201, reg.response))


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def manage(client_id: str):
    try:
        client = service.authenticate(client_id, _bearer_token())
        if request.method == "GET":
            return as_response(json_answer(200, service.client_info(client)))
        if request.method == "PUT":
            return as_response(json_answer(200, service.client_info(service.update(client, _json_body()))))
        service.delete(client)
        return "", 204, NO_STORE
    except OAuth2Error as exc:
        return as_response(json_answer(*exc()))


def _bearer_token() -> str | None:
    """The token from the Authorization header only (RFC 6750 §2.1); never from the URL or body."""
    if "access_token" in request.args or (request.mimetype == "application/x-www-form-urlencoded"
                                          and "access_token" in request.form):
        raise InvalidRequestError("send the access token in the Authorization header (Bearer), "
                                  "never in the query string or body")
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _json_body():
    if request.mimetype != "application/json":
        raise InvalidRequestError("Content-Type must be application/json")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before this returns
    try:
        value = loads(raw, max_bytes=current_app.config["MAX_BODY_BYTES"], what="the body")
    except UntrustedJSONError as exc:
        raise InvalidRequestError(str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidRequestError("the body must be a JSON object of client metadata")
    _check_bounds(value, 0)
    return value


def _check_bounds(value, depth: int) -> None:
    """Client metadata is shallow and small; refuse anything that is not."""
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, (list, dict)):
        if len(value) > MAX_ITEMS:
            raise InvalidRequestError(f"a JSON array or object in the body has more than {MAX_ITEMS} entries")
        for item in value.values() if isinstance(value, dict) else value:
            _check_bounds(item, depth + 1)

