"""Authlib's ``AuthorizationServer``, wired to Ostiary: client lookup, client authentication,
client status, and one place where every refusal is answered and written to the audit
trail. Requests come from ``app.oauth.front`` (WSGI, not Flask); responses go back as
(status, body, headers).

A failed client authentication gets one answer, ``AUTHENTICATION_FAILED`` (RFC 6749 §5.2
``invalid_client``, 401 with a Basic challenge), whether the client is unknown, its secret
or assertion is wrong, or it registered another method: no endpoint tells a stranger which
client_ids are registered. The audit trail keeps the reason. One refusal says more
(``WRONG_METHOD``): credentials that verified, sent by another method than the client
registered (its secret in the form instead of the Basic header, say). Whoever sent them holds
the client's credential, so naming the method it registered tells nothing to a stranger that an
unknown client_id would not, and it is the one thing its operator needs to fix the call. (The
method is client metadata, RFC 7591 §2, not a secret; the client_id's existence is what stays
unsaid.)
"""
from __future__ import annotations

import functools
import logging

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import current_app
from joserfc import jwt
from joserfc.jwk import ECKey

from app import audit
from app.extensions import db
from app.http.errors import json_answer
from app.oauth.client_auth import AFTER_PROOF, REPLAYED
from app.oauth.clients import StaleClient, load_client, served_cached
from app.oauth.errors import FORM_BODY
from app.oauth.grants.jwt_bearer import ASSERTION_REPLAYED, is_workload_jti
from app.oauth.group_commit import CONFIRMED, Write
from app.oauth.status import require_active
from app.support import hashing
from app.support.protocol import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    GRANT_TYPES,
    NONE,
    PRIVATE_KEY_JWT,
)
from app.trust.keysets import ASYMMETRIC_ALGS

log = logging.getLogger(__name__)

REFUSAL_EVENTS = {"oauth.token": "token.refused", "oauth.introspect": "introspection.refused",
                  "oauth.revoke": "revocation.refused", "oauth.end_task": "task.end_refused"}
UNSUPPORTED_GRANT_TYPE = (f"grant_type is missing or not supported (this server's: {', '.join(GRANT_TYPES)}); "
                          + FORM_BODY)
# RFC 6749 §5.2 invalid_client, the same for every failure (ASCII, no quotes: RFC 6749 §5.2).
AUTHENTICATION_FAILED = ("client authentication failed: the client_id is unknown, the credentials are "
                         "wrong, or the client registered another authentication method")
# The same, once the credentials verified under another method than the client's (see above).
WRONG_METHOD = ("client authentication failed: the credentials were sent with {sent}, but the client "
                "registered token_endpoint_auth_method {registered} (RFC 7591 section 2); send them that way")
METHOD_WITHDRAWN = ("client authentication failed: the client's token_endpoint_auth_method {registered} is no "
                    "longer allowed on this server; an administrator must move the client to another")


class OstiaryAuthorizationServer(AuthorizationServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._auth_methods = {CLIENT_SECRET_BASIC: _secret_basic, CLIENT_SECRET_POST: _secret_post,
                              NONE: _public}

    def register_client_auth_method(self, method, func):
        """Authlib's registry stays unused: ``authenticate_client`` runs the methods itself."""
        self._auth_methods[method] = func

    def query_client(self, client_id):
        return load_client(client_id)

    def save_token(self, token, request):
        raise NotImplementedError("grants write their own issuance (OstiaryGrantMixin.issue)")

    def create_oauth2_request(self, request):
        return request  # already an OAuth2Request (app.oauth.front.FormRequest)

    def handle_response(self, status, body, headers):
        """RFC 6749 §5.1/§5.2: JSON, never cached, as every JSON answer (``app.http.errors``)."""
        return json_answer(status, body, headers)

    def get_token_grant(self, request):
        """Authlib's, with a description on the refusal it raises bare: every refusal says what
        was wrong, and a JSON body (no parameters at all) is the usual cause."""
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            error.description = UNSUPPORTED_GRANT_TYPE
            raise

    def send_signal(self, name, *args, **kwargs):
        pass  # no Flask signals: the audit trail records what happened

    def authenticate_client(self, request, methods, endpoint="token"):
        """RFC 6749 §2.3: the client authenticates with the one method it registered
        (``OAuthClient.check_endpoint_auth_method``); then the contract's status rules
        (``app.oauth.status``). An assertion authenticates one request: at the token endpoint
        its ``jti`` is spent with the token (``OstiaryGrantMixin.issue``), anywhere else now,
        before the request acts.

        Any failure once a client has been looked up is answered ``AUTHENTICATION_FAILED``
        (``_Attempt.refusal``), unless it is marked ``AFTER_PROOF`` or the credentials verified
        under a method the client did not register (``WRONG_METHOD``); a failure before, such
        as a malformed Basic header or an unreadable assertion, depends on the request alone
        and keeps its own description."""
        attempt, client = _Attempt(self.query_client), None
        for method in methods:
            attempt.start(method)
            try:
                found = self._auth_methods[method](attempt, request)
            except InvalidClientError as exc:
                if not attempt.looked_up or getattr(exc, AFTER_PROOF, False):
                    raise
                attempt.note(exc.description)
                if attempt.client is None and method == PRIVATE_KEY_JWT:
                    _verify_as_if_registered(request.form.get("client_assertion"))
                raise attempt.refusal() from None
            if found is None:
                attempt.failed()
                continue
            if not found.check_endpoint_auth_method(method, endpoint):
                attempt.note(f"the client registered {found.row.token_endpoint_auth_method}")
                if method != NONE:  # its credentials verified; ``none`` proves nothing
                    attempt.proven_wrong_method(found)
                continue
            client = found
            break
        if client is None:
            raise attempt.refusal()
        request.auth_method = method
        request.client = client
        require_active(client)
        jti = request.assertion_jti
        if endpoint != "token" and jti is not None:
            request.assertion_jti = None
            current_app.extensions["ostiary.group_commit"].write(Write([], jti=jti))
        return client

    def handle_error_response(self, request, error):
        """Every refusal is an audit event with its reason (and the policy decision, if one was
        taken). The assertion's jti, if one was accepted, is spent with the event; if it was
        spent already, the refusal is the replay's, whatever else was wrong. No refusal rests
        on a cached client record: the request is answered again from a fresh read, unless the
        refusal was decided in a write that found the record unchanged (``CONFIRMED``)."""
        served = served_cached()
        if served is not None and not getattr(error, CONFIRMED, False):
            raise StaleClient(served.client_id)
        if not error.description:  # raised bare where no hook of ours describes it
            error.description = f"the request was refused ({error.error})"
        try:
            error = _record_refusal(request, error)
        except Exception:  # the refusal stands even if the trail cannot take it; the log says so
            log.exception("could not record a refusal in the audit trail")
            db.session.rollback()
        return super().handle_error_response(request, error)


def _record_refusal(request, error):
    """One group-committed write (``app.oauth.group_commit``), as an issuance's: under load, as
    many refusals as tokens, and never a wait for a write on the event loop's thread."""
    jti, request.assertion_jti = request.assertion_jti, None
    replayed = _replay_refusal(jti)
    try:
        current_app.extensions["ostiary.group_commit"].write(Write(
            _refusal_events(request, error), jti=jti,
            on_replay=_refusal_events(request, replayed) if jti is not None else None))
    except InvalidClientError:
        return replayed
    return error


def _replay_refusal(jti: dict | None):
    """The answer to a request whose assertion's ``jti`` (its assertion_jti row) was spent
    before: a client assertion's replay is the client's (RFC 7523 §3.2 ``invalid_client``), a
    workload JWT's presented as the grant is the grant's (§3.1 ``invalid_grant``); its row's key
    says which (``jwt_bearer.jti_namespace``)."""
    if jti is not None and is_workload_jti(jti):
        return InvalidGrantError(ASSERTION_REPLAYED)
    return InvalidClientError(description=REPLAYED)


def _refusal_events(request, error) -> list[dict]:
    client = request.client
    client_id = client.client_id if client is not None else (
        getattr(error, "claimed_client_id", None) or _claimed_client_id(request))
    decision = request.decision
    authenticated = request.auth_method is not None
    events = []
    if decision is not None and not decision.allowed and decision.rule != "approval":
        events.append(audit.values("policy.decision", decision.actor, client_id=client_id, decision="deny",
                                   reason=decision.reason, data=decision.as_audit()))
    events.append(audit.values(
        REFUSAL_EVENTS.get(request.endpoint, "oauth.refused"),
        f"client:{client_id}" if authenticated else "anonymous", client_id=client_id, decision="deny",
        reason=getattr(error, "audit_reason", None) or error.get_error_description(),
        data={"error": error.error, "grant_type": request.payload.data.get("grant_type"),
              "authenticated": authenticated}))
    return events


class _Attempt:
    """One request's client authentication: the ``query_client`` the methods are given, which
    notes whom they looked up, and what failed, method by method, for the audit trail."""

    def __init__(self, query_client):
        self._query = query_client
        self.method, self.looked_up, self.client, self.claimed = None, False, None, None
        self._notes: list[str] = []
        self._wrong_method: str | None = None  # WRONG_METHOD's text, once credentials verified

    def __call__(self, client_id):
        self.looked_up, self.claimed = True, client_id
        self.client = self._query(client_id)
        return self.client

    def start(self, method: str) -> None:
        self.method, self.looked_up, self.client = method, False, None

    def note(self, reason: str | None) -> None:
        self._notes.append(f"{self.method}: {reason or 'refused'}")

    def failed(self) -> None:
        """The method found no client: why, if its credentials were sent at all."""
        if not self.looked_up:
            return
        if self.client is None:
            self.note("no client has this client_id")
        elif not self.client.row.secret_hash:
            self.note(f"the client has no secret (it registered {self.client.row.token_endpoint_auth_method})")
        else:
            self.note("wrong client secret")

    def proven_wrong_method(self, client) -> None:
        """The credentials of ``client`` verified under ``self.method``, which it did not register."""
        registered = client.row.token_endpoint_auth_method
        if self._wrong_method is None:
            self._wrong_method = (WRONG_METHOD.format(sent=self.method, registered=registered)
                                  if registered != self.method else METHOD_WITHDRAWN.format(registered=registered))

    def refusal(self) -> InvalidClientError:
        """RFC 6749 §5.2: 401 with a Basic challenge for every method, so that how the client
        tried does not change the answer either; the reason goes to the trail only, unless the
        credentials verified under another method (``WRONG_METHOD``)."""
        error = InvalidClientError(status_code=401, description=self._wrong_method or AUTHENTICATION_FAILED)
        error.audit_reason = (f"{AUTHENTICATION_FAILED} ({'; '.join(self._notes)})" if self._notes
                              else f"{AUTHENTICATION_FAILED} (no client credentials were sent)")
        claimed = self.claimed
        error.claimed_client_id = claimed[:64] if isinstance(claimed, str) and claimed else None
        return error


def _secret_basic(query_client, request):
    """``client_secret_basic`` (RFC 6749 §2.3.1). Authlib's Basic parser raises ValueError on
    some malformed headers ("Basic ", non-UTF-8): the RFC 6749 §2.3.1 error they are, not a 500."""
    try:
        client_id, secret = extract_basic_authorization(request.headers)
    except ValueError:
        raise InvalidClientError(status_code=401, description="the Authorization header is not valid "
                                                              "HTTP Basic (RFC 7617)") from None
    return _by_secret(query_client, client_id, secret)


def _secret_post(query_client, request):
    """``client_secret_post`` (RFC 6749 §2.3.1): the credentials in the form."""
    return _by_secret(query_client, request.form.get("client_id"), request.form.get("client_secret"))


def _public(query_client, request):
    """``none`` (RFC 7591 §2): a public client names itself in the form and proves nothing; only
    the grants that bind a person's authorization with PKCE accept it. A request that carries
    any credential is not a public client's."""
    form = request.form
    if request.headers.get("Authorization") or form.get("client_secret") or form.get("client_assertion"):
        return None
    return query_client(form["client_id"]) if form.get("client_id") else None


def _by_secret(query_client, client_id, secret):
    """The client if ``secret`` is its secret. An unknown client, or one without a secret,
    costs the same keyed hash and comparison (``app.support.hashing.verify``) as a wrong secret."""
    if not client_id or not secret:
        return None
    client = query_client(client_id)
    if client is None or not client.row.secret_hash:
        hashing.verify(secret, _STAND_IN_HASH)
        return None
    try:
        return client if client.check_client_secret(secret) else None
    except InvalidClientError as exc:  # raised only once the secret matched: it has expired
        setattr(exc, AFTER_PROOF, True)
        raise


_STAND_IN_HASH = "0" * 64  # shaped as a stored secret hash (hex SHA-256); no secret hashes to it


@functools.cache
def _stand_in_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def _verify_as_if_registered(assertion: str | None) -> None:
    """For an assertion whose client is unknown: the signature check a registered key would
    have cost, against a key made for the purpose, so the answer comes no sooner."""
    try:
        jwt.decode(assertion or "", _stand_in_key(), algorithms=ASYMMETRIC_ALGS)
    except Exception:  # noqa: BLE001 (it fails; only its cost matters)
        pass


def _claimed_client_id(request) -> str | None:
    """Who the caller said it was, for the trail (not authenticated; truncated)."""
    try:
        claimed, _ = extract_basic_authorization(request.headers)
    except ValueError:
        claimed = None
    claimed = claimed or request.payload.data.get("client_id")
    return claimed[:64] if isinstance(claimed, str) and claimed else None
