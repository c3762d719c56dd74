"""Authlib's ``AuthorizationServer``, wired to Ostiary: client lookup, client status, and
one place where every refusal is answered and written to the audit trail. Requests come
from ``app.oauth.front`` (WSGI, not Flask); responses go back as (status, body, headers).
"""
from __future__ import annotations

import json
import logging

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import current_app

from .. import audit
from ..extensions import db
from .client_auth import REPLAYED
from .clients import StaleClient, load_client, served_cached
from .group_commit import Write
from .status import require_active

log = logging.getLogger(__name__)

REFUSAL_EVENTS = {"oauth.token": "token.refused", "oauth.introspect": "introspection.refused",
                  "oauth.revoke": "revocation.refused", "oauth.end_task": "task.end_refused"}


class OstiaryAuthorizationServer(AuthorizationServer):
    def query_client(self, client_id):
        return load_client(client_id)

    def save_token(self, token, request):
        raise NotImplementedError("grants write their own issuance (OstiaryGrantMixin.issue)")

    def create_oauth2_request(self, request):
        return request  # already an OAuth2Request (app.oauth.front.FormRequest)

    def handle_response(self, status, body, headers):
        """RFC 6749 §5.1/§5.2: JSON, never cached (Authlib's headers say so for its answers)."""
        return status, json.dumps(body).encode(), list(headers)

    def send_signal(self, name, *args, **kwargs):
        pass  # no Flask signals: the audit trail records what happened

    def authenticate_client(self, request, methods, endpoint="token"):
        """Authlib authenticates; then the contract's status rules (``app.oauth.status``). An
        assertion authenticates one request: at the token endpoint its ``jti`` is spent with
        the token (``OstiaryGrantMixin.issue``), anywhere else now, before the request acts."""
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            if (exc.description or "").startswith("The client cannot authenticate"):
                exc.description = ("client authentication failed: send the registered client secret "
                                   "or a private_key_jwt client assertion (RFC 7523)")
            raise
        except ValueError:
            _check_basic_header(request)  # the header's error, if that is what raised
            raise
        request.client = client
        require_active(client)
        jti = getattr(request, "assertion_jti", None)
        if endpoint != "token" and jti is not None:
            request.assertion_jti = None
            current_app.extensions["ostiary.group_commit"].write(Write([], jti=jti))
        return client

    def handle_error_response(self, request, error):
        """Every refusal is an audit event with its reason (and the policy decision, if one was
        taken). The assertion's jti, if one was accepted, is spent with the event; if it was
        spent already, the refusal is the replay's, whatever else was wrong. No refusal rests
        on a cached client record: the request is answered again from a fresh read."""
        served = served_cached()
        if served is not None:
            raise StaleClient(served.client_id)
        try:
            error = _record_refusal(request, error)
        except Exception:  # the refusal stands even if the trail cannot take it; the log says so
            log.exception("could not record a refusal in the audit trail")
            db.session.rollback()
        return super().handle_error_response(request, error)


def _record_refusal(request, error):
    """One group-committed write (``app.oauth.group_commit``), as an issuance's: under load, as
    many refusals as tokens, and never a wait for the audit head on the event loop's thread."""
    jti, request.assertion_jti = getattr(request, "assertion_jti", None), None
    replayed = InvalidClientError(description=REPLAYED)
    try:
        current_app.extensions["ostiary.group_commit"].write(Write(
            _refusal_events(request, error), jti=jti,
            on_replay=_refusal_events(request, replayed) if jti is not None else None))
    except InvalidClientError:
        return replayed
    return error


def _refusal_events(request, error) -> list[dict]:
    client = getattr(request, "client", None)
    client_id = client.client_id if client is not None else _claimed_client_id(request)
    decision = getattr(request, "decision", None)
    authenticated = getattr(request, "auth_method", None) is not None
    events = []
    if decision is not None and not decision.allowed and decision.rule != "approval":
        events.append(audit.values("policy.decision", decision.actor, client_id=client_id, decision="deny",
                                   reason=decision.reason, data=decision.as_audit()))
    events.append(audit.values(
        REFUSAL_EVENTS.get(request.endpoint, "oauth.refused"),
        f"client:{client_id}" if authenticated else "anonymous", client_id=client_id, decision="deny",
        reason=error.get_error_description(),
        data={"error": error.error, "grant_type": request.payload.data.get("grant_type"),
              "authenticated": authenticated}))
    return events


def _check_basic_header(request) -> None:
    """Authlib's Basic parser raises ValueError on some malformed headers ("Basic ", non-UTF-8):
    answer those as the RFC 6749 §2.3.1 error they are, not a 500. (Checked once Authlib has
    raised, not before every request: the header is then parsed once.)"""
    try:
        extract_basic_authorization(request.headers)
    except ValueError:
        raise InvalidClientError(status_code=401, description="the Authorization header is not valid "
                                                              "HTTP Basic (RFC 7617)") from None


def _claimed_client_id(request) -> str | None:
    """Who the caller said it was, for the trail (not authenticated; truncated)."""
    try:
        claimed, _ = extract_basic_authorization(request.headers)
    except ValueError:
        claimed = None
    claimed = claimed or request.payload.data.get("client_id")
    return claimed[:64] if isinstance(claimed, str) and claimed else None
