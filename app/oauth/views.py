"""The machine endpoints: token, introspection, revocation and task end, as Flask views.

Each view hands the form to Authlib's server (``app.oauth.server``) as an ``OAuthRequest``
and returns its answer. These endpoints take no cookies, so no CSRF token and no console
session; clients authenticate every request, so no rate limit by address either.
"""
from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import MultiDict

from ..extensions import csrf, limiter

bp = Blueprint("oauth", __name__)
csrf.exempt(bp)
limiter.exempt(bp)
FORM = "application/x-www-form-urlencoded"


class FormPayload(OAuth2Payload):
    """The form body's parameters: ``data`` holds each name's first value, ``datalist`` all.
    Never the query string: a client secret in a URL ends up in logs (RFC 6749 §2.3.1)."""

    def __init__(self, form):
        self._datalist = {name: form.getlist(name) for name in form}
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict:
        return self._data

    @property
    def datalist(self) -> dict[str, list]:
        return self._datalist


class OAuthRequest(OAuth2Request):
    """One request to a machine endpoint as the grants and endpoints see it. What handling it
    establishes is declared here: Authlib's ``client`` and ``auth_method``, and Ostiary's own."""

    endpoint: str  # the Flask endpoint ("oauth.token"), which names its audit events
    # A client assertion that authenticated the request (its assertion_jti row): spent with the
    # request's token or refusal (``app.oauth.storage``), or at once by any other endpoint.
    assertion_jti: dict | None = None
    decision = None  # the policy's Decision, kept for the audit trail

    def __init__(self):
        super().__init__(request.method, request.base_url, headers=request.headers)
        self.payload = FormPayload(request.form if request.mimetype == FORM else MultiDict())
        self.endpoint = request.endpoint

    @property
    def form(self):
        return self.payload.data

    @property
    def args(self):
        return {}


def _answer(status: int, body: bytes, headers: list) -> Response:
    return Response(body, status=status, headers=headers)


def _server():
    return current_app.extensions["ostiary.oauth"]


@bp.post("/token")
def token():
    return _answer(*_server().create_token_response(OAuthRequest()))


@bp.post("/introspect")
def introspect():
    return _answer(*_server().create_endpoint_response("introspection", OAuthRequest()))


@bp.post("/revoke")
def revoke():
    return _answer(*_server().create_endpoint_response("revocation", OAuthRequest()))


@bp.post("/task/end")
def end_task():
    return _answer(*_server().create_endpoint_response("task_end", OAuthRequest()))
