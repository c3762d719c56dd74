"""Workload-identity issuers: JWTs (SPIFFE JWT-SVID, Kubernetes service account tokens, CI OIDC
tokens) that an administrator trusts as RFC 8693 subject tokens, so a workload proves what it is
before anything is minted.

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

from .. import audit, clock, dbapi, fetch
from ..extensions import db
from ..models import WorkloadIssuer
from ..registration.keys import ASYMMETRIC_ALGS, KeySetError, check_jwks
from ..untrusted_json import check_jwt, loads
from .jwks import registered_keys

log = logging.getLogger(__name__)

LEEWAY = 30


class WorkloadIssuerError(ValueError):
    """The issuer cannot be added or removed; the message says why, for a person."""


class UntrustedWorkloadToken(ValueError):
    """The JWT is not from a trusted workload issuer or does not verify; the message says why."""


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a JWT claims, before anything is verified (to pick the issuer's keys). The
    JSON is bounded before joserfc parses it (``app.untrusted_json``): ``verify`` reaches
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
# On the driver in autocommit (app.dbapi): token exchange runs inline on the event loop, and an
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
        jwt.JWTClaimsRegistry(
            now=lambda: int(clock.timestamp()), leeway=LEEWAY, iss={"essential": True, "value": iss},
            sub={"essential": True}, exp={"essential": True},
            aud={"essential": True, "value": issuer.audience},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise UntrustedWorkloadToken(f"the workload token from {iss} does not verify "
                                     f"({getattr(exc, 'error', None) or type(exc).__name__})") from None
    sub = decoded.claims["sub"]
    if issuer.subject_pattern and not fnmatch.fnmatchcase(sub, issuer.subject_pattern):
        raise UntrustedWorkloadToken(f"workload subject is not one that issuer {iss} may vouch for")
    return decoded.claims


def add_issuer(*, issuer: str, audience: str, actor: str, jwks: dict | None = None,
               jwks_uri: str | None = None, algorithms: list[str] | None = None,
               subject_pattern: str | None = None) -> WorkloadIssuer:
    """Trust an issuer's JWTs as subject tokens; audited."""
    if not issuer or len(issuer) > 255 or not audience or len(audience) > 255:
        raise WorkloadIssuerError("issuer and audience are required (at most 255 characters)")
    if bool(jwks) == bool(jwks_uri):
        raise WorkloadIssuerError("give exactly one of jwks or jwks_uri")
    try:
        if jwks:
            check_jwks(jwks)
        else:
            fetch.check_url(jwks_uri)
    except (KeySetError, fetch.FetchError) as exc:
        raise WorkloadIssuerError(str(exc)) from None
    algorithms = algorithms or ["ES256", "RS256"]
    if bad := [a for a in algorithms if a not in ASYMMETRIC_ALGS]:
        raise WorkloadIssuerError(f"not allowed algorithms: {', '.join(bad)} (asymmetric only)")
    if db.session.execute(select(WorkloadIssuer.id).where(WorkloadIssuer.issuer == issuer)).first():
        raise WorkloadIssuerError(f"workload issuer {issuer} is already trusted")
    row = WorkloadIssuer(issuer=issuer, audience=audience, jwks=jwks, jwks_uri=jwks_uri,
                         algorithms=algorithms, subject_pattern=subject_pattern or None,
                         created_at=clock.now())
    db.session.add(row)
    audit.record("workload_issuer.added", actor, data={
        "issuer": issuer, "audience": audience, "jwks_uri": jwks_uri, "algorithms": algorithms,
        "subject_pattern": subject_pattern})
    db.session.commit()
    return row


def remove_issuer(issuer: str, *, actor: str) -> None:
    row = db.session.execute(select(WorkloadIssuer).where(WorkloadIssuer.issuer == issuer)).scalar_one_or_none()
    if row is None:
        raise WorkloadIssuerError(f"no workload issuer {issuer}")
    db.session.delete(row)
    audit.record("workload_issuer.removed", actor, data={"issuer": issuer})
    db.session.commit()


def list_issuers() -> list[WorkloadIssuer]:
    return list(db.session.execute(select(WorkloadIssuer).order_by(WorkloadIssuer.issuer)).scalars())
