"""Verifying a workload's JWT (SPIFFE JWT-SVID, Kubernetes service account token, CI OIDC token)
from a trusted workload issuer (``app.trust.issuers``), presented as an RFC 8693 subject token,
so that a workload proves what it is before anything is minted.

A workload JWT is accepted when its ``iss`` is a configured issuer, its signature verifies with
one of that issuer's keys (inline or ``jwks_uri``) under one of its algorithms, its ``aud``
contains the configured audience, it is within ``exp``/``nbf``, and its ``sub`` matches the
issuer's subject pattern.
"""
from __future__ import annotations

import fnmatch
import logging
from typing import NamedTuple

from joserfc import jws, jwt
from joserfc.errors import JoseError
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


def verify(token: str) -> dict:
    """The claims of a workload JWT from a trusted issuer, or ``UntrustedWorkloadToken``."""
    iss = unverified_issuer(token)
    row = dbapi.fetch_one(FIND_ISSUER, {"issuer": iss}) if iss else None
    issuer = IssuerRecord(*row) if row is not None else None
    if issuer is None:
        raise UntrustedWorkloadToken("the subject token is not from this server or a trusted workload issuer")
    keys = registered_keys(issuer.jwks, issuer.jwks_uri)
    if keys is None:
        raise UntrustedWorkloadToken(f"the keys of workload issuer {iss} cannot be read")
    try:
        decoded = jwt.decode(token, keys, algorithms=issuer.algorithms)
        jwt_claims.check(decoded.claims, iss={"essential": True, "value": iss}, sub={"essential": True},
                         exp={"essential": True}, aud={"essential": True, "value": issuer.audience})
    except (JoseError, ValueError) as exc:
        raise UntrustedWorkloadToken(f"the workload token from {iss} does not verify "
                                     f"({getattr(exc, 'error', None) or type(exc).__name__})") from None
    sub = decoded.claims["sub"]
    if issuer.subject_pattern and not fnmatch.fnmatchcase(sub, issuer.subject_pattern):
        raise UntrustedWorkloadToken(f"workload subject is not one that issuer {iss} may vouch for")
    return decoded.claims
