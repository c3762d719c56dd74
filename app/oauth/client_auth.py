"""Client authentication with ``private_key_jwt`` (RFC 7523 §2.2, §3; OIDC Core §9).

Authlib's ``JWTBearerClientAssertion`` does the parsing; Ostiary tightens it:

- ``aud`` must be this issuer's identifier (draft-ietf-oauth-rfc7523bis, against audience
  injection) or, for compatibility, the token endpoint URL, and nothing else;
- the assertion lives at most ``ASSERTION_MAX_LIFETIME`` seconds (``exp`` - ``iat``, or
  ``exp`` - now without ``iat``), timed by ``app.support.clock``;
- ``jti`` is required and single use, at every endpoint: it is INSERTed into
  ``assertion_jti`` in the same transaction as the request's token or its refusal, or, at
  the other endpoints, before the request acts (``app.oauth.server``), so the primary key
  makes the check atomic across processes and instances (eight concurrent copies yield one
  token; Hydra CVE-2020-5300);
- the key is one of the client's registered keys, chosen by ``kid``; ``jwk``, ``jku`` and
  ``x5u`` headers are never followed; only asymmetric algorithms are accepted.
"""
from __future__ import annotations

import logging
import secrets

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite

from app.models import AssertionJti
from app.support import clock, jwt_claims
from app.support.echo import safe_echo
from app.support.protocol import JWT_BEARER_ASSERTION, PRIVATE_KEY_JWT
from app.support.untrusted_json import UntrustedJSONError, check_jwt
from app.trust.keysets import ASYMMETRIC_ALGS, registered_keys

log = logging.getLogger(__name__)

PURGE_ONE_IN = 256
REPLAYED = "the client assertion was already used (jti replay)"
# An InvalidClientError with this attribute set was raised once the client's credential had
# been verified: its own description is the answer, as it tells nothing to a stranger.
AFTER_PROOF = "after_proof"
JTI = AssertionJti.__table__
PURGE_JTI = delete(JTI).where(JTI.c.expires_at < bindparam("now"))
_spend_statements: dict = {}


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __call__(self, query_client, request):
        """Authlib's flow, keeping the verified claims: the ``jti`` is spent later, in the
        transaction that writes the token or the refusal (``request.assertion_jti``)."""
        form = request.form
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION or not assertion:
            return None
        _, unverified = self.extract_assertion(assertion)
        client_id = unverified.get("sub")
        if not isinstance(client_id, str):
            raise InvalidClientError(description="the client assertion has no sub (the client_id)")
        client = query_client(client_id)
        if not client:
            # For the audit trail: the caller is answered as for a wrong key (app.oauth.server).
            raise InvalidClientError(description="no client has the assertion's sub as its client_id")
        request.client = client
        claims = self.process_assertion_claims(assertion, self.resolve_client_public_key(client))
        request.assertion_jti = {
            "client_id": claims["sub"], "jti": claims["jti"],
            "expires_at": jwt_claims.kept_until(claims["exp"])}
        return self.authenticate_client(client)

    def extract_assertion(self, assertion: str):
        """Authlib's, once the JSON is known to be bounded: Authlib reads the claims before any
        signature is checked, with a parser that recurses (``app.support.untrusted_json``)."""
        try:
            check_jwt(assertion, what="the client assertion")
        except UntrustedJSONError as exc:
            raise InvalidClientError(description=str(exc)) from None
        return super().extract_assertion(assertion)

    def get_audiences(self):
        issuer = current_app.config["ISSUER"]
        return [issuer, issuer + "/token"]

    def resolve_client_public_key(self, client) -> RegisteredKeys:
        """The client's registered keys; a key the assertion names in its header is never used."""
        keys = registered_keys(client.row.jwks, client.row.jwks_uri)
        if keys is None:
            raise InvalidClientError(description="the client's registered keys cannot be used")
        alg = (client.row.client_metadata or {}).get("token_endpoint_auth_signing_alg")
        return RegisteredKeys(keys, alg)

    def process_assertion_claims(self, assertion, resolve_key: RegisteredKeys):
        try:
            token = jwt.decode(assertion, resolve_key.pick, algorithms=ASYMMETRIC_ALGS)
        except JoseError as exc:
            log.debug("client assertion refused: %r", exc)
            raise InvalidClientError(description=f"the client assertion is invalid: {_reason(exc)}") from None
        try:
            self.verify_claims(token.claims)
        except InvalidClientError as exc:
            # The signature verified with the client's own key: whoever sent it holds that key,
            # so the precise reason (lifetime, aud, jti) is theirs to read (app.oauth.server).
            setattr(exc, AFTER_PROOF, True)
            raise
        return token.claims

    def verify_claims(self, claims):
        try:
            jwt_claims.check(claims, iss={"essential": True}, sub={"essential": True}, exp={"essential": True},
                             jti={"essential": True}, aud={"essential": True, "values": self.get_audiences()})
        except JoseError as exc:
            raise InvalidClientError(
                description=f"the client assertion is invalid: {_reason(exc)}") from None
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="the client assertion's iss and sub must both be the client_id")
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if any(a not in self.get_audiences() for a in aud):
            raise InvalidClientError(description="the client assertion's aud must be this issuer only")
        start = claims.get("iat", clock.timestamp())
        if claims["exp"] - start > current_app.config["ASSERTION_MAX_LIFETIME"]:
            raise InvalidClientError(
                description=f"the client assertion lives longer than "
                            f"{current_app.config['ASSERTION_MAX_LIFETIME']} seconds")
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 255:
            raise InvalidClientError(description="the client assertion's jti must be a short string")


def spend_jtis(connection, rows: list[dict]) -> set[tuple[str, str]]:
    """INSERT assertions' jti rows in the caller's transaction, in one statement; returns the
    (client_id, jti) pairs that were new, the rest being replays. A concurrent copy waits on
    the primary key and finds the row when the first commits; rows go in sorted order, so two
    transactions never wait on each other's. A row outlives its assertion (plus leeway); rows
    of expired assertions protect nothing (exp already refuses them) and are swept now and
    then, not on every request."""
    if not rows:
        return set()
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        connection.execute(PURGE_JTI, {"now": clock.now()})
    rows = sorted(rows, key=lambda r: (r["client_id"], r["jti"]))
    params = {f"{name}{n}": row[name] for n, row in enumerate(rows) for name in ("client_id", "jti", "expires_at")}
    spent = connection.execute(_spend_statement(connection.dialect.name, len(rows)), params)
    return {tuple(pair) for pair in spent.all()}


def _spend_statement(dialect: str, count: int):
    """INSERT … ON CONFLICT DO NOTHING RETURNING for ``count`` rows (built once per size)."""
    key = (dialect, count)
    if key not in _spend_statements:
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
        _spend_statements[key] = insert(JTI).values([
            {name: bindparam(f"{name}{n}", type_=JTI.c[name].type) for name in ("client_id", "jti", "expires_at")}
            for n in range(count)]).on_conflict_do_nothing().returning(JTI.c.client_id, JTI.c.jti)
    return _spend_statements[key]


class RegisteredKeys:
    """The keys a client registered, and the one algorithm it registered for assertions, if any."""

    def __init__(self, keys: KeySet, alg: str | None):
        self.keys, self.alg = keys, alg

    def pick(self, obj):
        """joserfc key resolver: the registered key the ``kid`` names (or the only one)."""
        headers = obj.headers()
        if self.alg and headers.get("alg") != self.alg:
            raise InvalidClientError(description=f"the client registered {self.alg} for its assertions")
        kid = headers.get("kid")
        candidates = [k for k in self.keys.keys if kid is None or kid == k.kid or kid == k.thumbprint()]
        if len(candidates) != 1:
            raise InvalidClientError(
                description="the assertion's kid names none of the client's registered keys" if kid
                else "the assertion has no kid and the client registered several keys")
        return candidates[0]


def _reason(exc: JoseError) -> str:
    return safe_echo(exc.description or exc.error or "unreadable", 200)
