"""Verifying a workload's JWT (SPIFFE JWT-SVID, Kubernetes service account token, CI OIDC token)
from a trusted workload issuer (``app.trust.issuers``), presented as an RFC 8693 subject token
or as an RFC 7523 §2.1 authorization grant, so that a workload proves what it is before anything
is minted.

A workload JWT is accepted when its ``iss`` is a configured issuer, its signature verifies with
one of that issuer's keys (inline or ``jwks_uri``) under one of its algorithms (asymmetric only:
``none`` and HMAC never verify), its ``aud`` is right (below), it is within ``exp``/``nbf``, and
its ``sub`` matches the issuer's subject pattern.

The ``aud``: a subject token must contain the audience configured for its issuer; a grant must
name this server's issuer identifier and nothing else (draft-ietf-oauth-rfc7523bis §4: a JWT
whose audience is an authorization server names it by its issuer identifier alone, so that it
cannot be replayed to another).
"""
from __future__ import annotations

import fnmatch
import logging
from typing import NamedTuple

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    UnsupportedAlgorithmError,
)
from sqlalchemy import bindparam, select

from app.db import dbapi
from app.models import WorkloadIssuer
from app.support import jwt_claims
from app.support.untrusted_json import check_jwt, loads
from app.trust.keysets import registered_keys

log = logging.getLogger(__name__)


class UntrustedWorkloadToken(ValueError):
    """The JWT is not from a trusted workload issuer or does not verify; the message says why."""


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a JWT claims, before anything is verified (to pick the issuer's keys). The
    JSON is bounded before joserfc parses it (``app.support.untrusted_json``): ``verify`` reaches
    joserfc only through here."""
    try:
        check_jwt(token)
        claims = loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, UnicodeError):  # UntrustedJSONError is a ValueError
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


class IssuerRecord(NamedTuple):
    """What verifying a workload JWT reads of its issuer."""
    jwks: dict | None
    jwks_uri: str | None
    audience: str
    algorithms: list
    subject_pattern: str | None


_ISSUER = WorkloadIssuer.__table__
# On the driver in autocommit (app.db.dbapi): token exchange runs inline on the event loop, and an
# ORM transaction on SQLite would take the write lock, then hold it while the keys are fetched.
FIND_ISSUER = select(*(_ISSUER.c[name] for name in IssuerRecord._fields)).where(
    _ISSUER.c.issuer == bindparam("issuer"))


def verify(token: str, *, sole_audience: str | None = None, what: str = "the subject token") -> dict:
    """The claims of a workload JWT from a trusted issuer, or ``UntrustedWorkloadToken``, whose
    message names ``what`` was presented and says why.

    ``sole_audience``: for a grant, the one ``aud`` the JWT must carry, alone (this server's
    issuer identifier); otherwise the ``aud`` must contain the issuer's configured audience."""
    iss = unverified_issuer(token)
    row = dbapi.fetch_one(FIND_ISSUER, {"issuer": iss}) if iss else None
    issuer = IssuerRecord(*row) if row is not None else None
    if issuer is None:
        raise UntrustedWorkloadToken(f"{what} is not from this server or a trusted workload issuer")
    keys = registered_keys(issuer.jwks, issuer.jwks_uri)
    if keys is None:
        raise UntrustedWorkloadToken(f"the keys of workload issuer {iss} cannot be read")
    audience = sole_audience or issuer.audience
    try:
        decoded = jwt.decode(token, keys, algorithms=issuer.algorithms)
        jwt_claims.check(decoded.claims, iss={"essential": True, "value": iss}, sub={"essential": True},
                         exp={"essential": True}, aud={"essential": True, "value": audience})
    except (JoseError, ValueError) as exc:
        raise UntrustedWorkloadToken(f"the workload token from {iss} does not verify "
                                     f"({_reason(exc, issuer, audience)})") from None
    claims = decoded.claims
    if sole_audience is not None and claims["aud"] not in (sole_audience, [sole_audience]):
        raise UntrustedWorkloadToken(f"the workload token from {iss} does not verify (its aud must be "
                                     f"{sole_audience} alone, this server's issuer identifier)")
    sub = claims["sub"]
    if not isinstance(sub, str) or (issuer.subject_pattern and not fnmatch.fnmatchcase(sub, issuer.subject_pattern)):
        raise UntrustedWorkloadToken(f"workload subject is not one that issuer {iss} may vouch for")
    return claims


def _reason(exc: Exception, issuer: IssuerRecord, audience: str) -> str:
    """Why joserfc refused the JWT, in words its presenter can act on."""
    error = getattr(exc, "error", None)
    if isinstance(exc, ExpiredTokenError):
        return "it has expired"
    if isinstance(exc, UnsupportedAlgorithmError):
        return f"the issuer is trusted for {', '.join(issuer.algorithms)} only"
    if isinstance(exc, BadSignatureError):
        return "the signature does not verify with the issuer's keys"
    if isinstance(exc, ClaimError) and exc.claim == "aud":
        return f"its aud must be {audience}"
    if isinstance(exc, ClaimError):
        return f"{error}: {exc.claim}"
    return error or type(exc).__name__
