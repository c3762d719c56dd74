"""The machine endpoints' front door: POSTs to the token, introspection, revocation and
task-end endpoints go from WSGI straight into Authlib's server, inside an app context.

These endpoints take no cookies, no CSRF token and no rate limit (clients authenticate every
request), so Flask's request dispatch and its extensions' hooks are pure cost on the
busiest route, where per-request machinery already outweighs the protocol work
(docs/performance.md, "Where the time goes"). Every other request, including any other
method on these paths, goes to Flask.
"""
from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from functools import partial
from http import HTTPStatus
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from flask import Flask, current_app, g, has_app_context
from werkzeug.datastructures import EnvironHeaders

from app.extensions import db
from app.http.errors import INTERNAL, error_answer, too_large
from app.oauth.clients import StaleClient, cached_reads

log = logging.getLogger(__name__)

# path -> (Authlib endpoint name or None for the token endpoint, audit name of the route)
ROUTES = {"/token": (None, "oauth.token"), "/introspect": ("introspection", "oauth.introspect"),
          "/revoke": ("revocation", "oauth.revoke"), "/task/end": ("task_end", "oauth.end_task")}
FORM = "application/x-www-form-urlencoded"


class FormPayload(OAuth2Payload):
    """The form body's parameters: ``data`` holds each name's first value, ``datalist`` all."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._datalist = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list]:
        return self._datalist


class Headers(EnvironHeaders):
    """The request's headers, true as a whole: Authlib's ``headers or {}`` would otherwise count
    them, which walks the whole environ."""

    def __bool__(self) -> bool:
        return True


class FormRequest(OAuth2Request):
    """One request to a machine endpoint as the grants and endpoints see it. What handling it
    establishes is declared here: Authlib's ``client`` and ``auth_method``, and Ostiary's own."""

    endpoint: str  # the Flask endpoint name ("oauth.token"), which names its audit events
    # A client assertion that authenticated the request (its assertion_jti row): spent with the
    # request's token or refusal (app.oauth.group_commit), or at once by any other endpoint.
    assertion_jti: dict | None = None
    decision = None  # the policy's Decision, kept for the audit trail

    def __init__(self, environ: dict, pairs: list[tuple[str, str]], endpoint: str):
        host = environ.get("HTTP_HOST") or environ["SERVER_NAME"]
        super().__init__(environ["REQUEST_METHOD"],
                         f"{environ['wsgi.url_scheme']}://{host}{environ.get('PATH_INFO', '')}",
                         headers=Headers(environ))
        self.payload = FormPayload(pairs)
        self.endpoint = endpoint

    @property
    def form(self):
        return self.payload.data

    @property
    def args(self):
        return {}


def mount(app: Flask) -> None:
    """Put the front before Flask. The routes are declared in Flask's URL map too, without a
    view: their POSTs never reach Flask, and any other method gets 405 with ``Allow: POST``."""
    for path, (_, endpoint) in ROUTES.items():
        app.add_url_rule(path, endpoint=endpoint, methods=["POST"])
    app.wsgi_app = MachineFront(app)


class MachineFront:
    """WSGI middleware in front of ``app.wsgi_app``."""

    def __init__(self, app: Flask):
        self.app, self.flask = app, app.wsgi_app
        self.max_body = int(app.config["MAX_BODY_BYTES"])

    def __call__(self, environ, start_response):
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        name, endpoint = route
        with self._app_context():
            g.remote_addr = environ.get("REMOTE_ADDR")  # the audit trail's address (app.audit)
            status, body, headers = self._respond(environ, name, endpoint)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def _app_context(self):
        """A new app context, unless one of this app is active (under tests): Flask's own rule
        for a request, so that the request shares the caller's database session, as before."""
        if has_app_context() and current_app._get_current_object() is self.app:
            return contextlib.nullcontext()
        return self.app.app_context()

    def _respond(self, environ, name, endpoint):
        pairs = self._form(environ)
        if pairs is None:
            return error_answer(413, "invalid_request", too_large(self.max_body))
        server = self.app.extensions["ostiary.oauth"]
        try:
            if name is None:
                return self._cached_first(server.create_token_response, environ, pairs, endpoint)
            if name == "introspection" and not any(key == "client_assertion" for key, _ in pairs):
                # (An assertion's jti is spent when it authenticates an introspection, before the
                # answer: an attempt answered again from a fresh read would find it spent.)
                return self._cached_first(partial(server.create_endpoint_response, name), environ, pairs, endpoint)
            return server.create_endpoint_response(name, FormRequest(environ, pairs, endpoint))
        except Exception:
            log.exception("unhandled error on POST %s", environ.get("PATH_INFO"))
            db.session.rollback()
            return error_answer(500, "server_error", INTERNAL)

    @staticmethod
    def _cached_first(respond, environ, pairs, endpoint):
        """A token request or an introspection, first from the cached client record
        (``app.oauth.clients``); if that was stale, or the answer would be a refusal, nothing
        was written: answer again from a fresh read."""
        try:
            with cached_reads():
                return respond(FormRequest(environ, pairs, endpoint))
        except StaleClient as stale:
            log.debug("client %r changed or is refused: answering again from a fresh read", stale.args[0])
        return respond(FormRequest(environ, pairs, endpoint))

    def _form(self, environ) -> list[tuple[str, str]] | None:
        """The form parameters, [] for another content type, None if the body is too large."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if not length and environ.get("wsgi.input_terminated"):  # chunked: read to the end
            length = self.max_body + 1
        body = environ["wsgi.input"].read(min(length, self.max_body + 1)) if length > 0 else b""
        if len(body) > self.max_body:
            return None
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != FORM:
            return []
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
