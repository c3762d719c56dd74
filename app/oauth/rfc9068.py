"""JWT access tokens (RFC 9068): minted here, verified here, one row each in ``issued_token``.

The JWT is what a relying service verifies offline against the JWKS; the row is what
introspection and revocation consult (revocation, task end, client status).
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError

from app.support import clock, jwt_claims
from app.support.protocol import BEARER
from app.support.untrusted_json import check_jwt

log = logging.getLogger(__name__)

TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1
VERIFY_ALGORITHMS = ["ES256", "RS256"]


@dataclass
class Minted:
    access_token: str
    claims: dict
    row: dict  # the ``issued_token`` row's values, INSERTed by the grant's one write transaction
    extra: dict = field(default_factory=dict)

    def response(self) -> dict:
        """RFC 6749 §5.1 (and RFC 8693 §2.2.1 via ``extra``); never a refresh token."""
        return {"access_token": self.access_token, "token_type": BEARER,
                "expires_in": self.claims["exp"] - self.claims["iat"],
                "scope": self.claims["scope"], **self.extra}


def mint(*, client_id: str, subject: str, scopes: list[str], audience: list[str], ttl: int,
         grant_type: str, owner: str | None = None, extra_claims: dict | None = None,
         parent_jti: str | None = None, task_id: str | None = None) -> Minted:
    """Sign an access token with the active key and give (not write) its ``issued_token`` row."""
    kid, alg, key = current_app.extensions["ostiary.keys"].signer()
    # The row keeps the exact issuance time: a token issued in the second of a suspension but
    # after a reactivation must compare as later than ``Client.tokens_not_before``.
    issued_at = clock.timestamp()
    now = int(issued_at)
    jti = new_jti()
    claims = {
        "iss": current_app.config["ISSUER"], "sub": subject,
        "aud": audience[0] if len(audience) == 1 else audience,
        "client_id": client_id, "scope": " ".join(scopes), "jti": jti, "iat": now, "exp": now + ttl,
    }
    if owner and current_app.config["INCLUDE_OWNER_IN_TOKENS"]:
        claims["owner"] = owner
    claims.update(extra_claims or {})
    token = jwt.encode({"typ": TOKEN_TYPE, "alg": alg, "kid": kid}, claims, key, algorithms=[alg])
    row = {"jti": jti, "client_id": client_id, "subject": subject, "scope": claims["scope"],
           "audience": list(audience), "grant_type": grant_type, "parent_jti": parent_jti,
           "task_id": task_id, "issued_at": _at(issued_at), "expires_at": _at(now + ttl)}
    return Minted(token, claims, row)


def new_jti() -> str:
    """Unique and unguessable (128 random bits), and in issuance order, as a UUIDv7 is: the
    indexes on ``jti`` (``issued_token``, ``audit_event``) grow at their end instead of each
    token dirtying a random page of each, on the token endpoint's write path
    (docs/performance.md). The prefix (microseconds since the epoch, hex) says no more than
    the token's own ``iat``."""
    return f"{int(clock.timestamp() * 1_000_000):014x}{secrets.token_urlsafe(16)}"


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def verify(token: str) -> dict | None:
    """The claims of a token this server signed and that has not expired, or None.

    Signature, ``typ``, ``iss`` and ``exp`` only (``exp`` with the leeway of every JWT, for
    a token another instance signed): whether it is still *active* (expired by the row's
    exact time, revoked, task ended, client suspended) is the row's business
    (``app.oauth.tokens``).
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        check_jwt(token)  # before joserfc, whose JSON parser recurses (app.support.untrusted_json)
        decoded = jwt.decode(token, current_app.extensions["ostiary.keys"].verification_keys(),
                             algorithms=VERIFY_ALGORITHMS)
        if decoded.header.get("typ") != TOKEN_TYPE:
            return None
        jwt_claims.check(decoded.claims, iss={"essential": True, "value": current_app.config["ISSUER"]},
                         exp={"essential": True}, jti={"essential": True})
    except (JoseError, ValueError):  # UntrustedJSONError is a ValueError
        return None
    return decoded.claims
