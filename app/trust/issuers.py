"""External issuers whose keys Ostiary believes, and the one set of operations on them.

Two kinds, one idea: a **software publisher** signs software statements that vouch for a
registration (RFC 7591 §2.3); a **workload issuer** (SPIFFE, Kubernetes, a CI system's OIDC)
signs JWTs that prove what a workload is, accepted as RFC 8693 subject tokens. Each is trusted
by an administrator with its issuer name, its public keys (a JWK Set, or a ``jwks_uri`` fetched
through ``app.support.fetch``) and the asymmetric algorithms it may use; what differs between
the kinds is only the fields a ``Kind`` names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from joserfc.jwk import KeySet
from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.models import Client, Publisher, WorkloadIssuer
from app.policy import scopes as catalogue
from app.support import clock, fetch
from app.trust.keysets import (
    ASYMMETRIC_ALGS,
    KeySetError,
    algorithms_for,
    check_jwks,
    resolve_jwks,
)

MAX_LENGTH = 255


class TrustError(ValueError):
    """The issuer cannot be added or removed as asked; the message says why, for a person."""


@dataclass(frozen=True)
class Kind:
    label: str                                  # in messages: "publisher", "workload issuer"
    model: type
    event: str                                  # audit events "<event>.added", "<event>.removed"
    fields: Callable[[dict], dict]              # the kind's own fields, checked, with defaults
    default_algorithms: tuple[str, ...] = ()    # when neither given nor read from inline keys
    in_use: Callable[[object], str | None] = lambda row: None  # why it cannot be removed


def _publisher_fields(given: dict) -> dict:
    level = given.get("assurance_level", 1)
    if level not in catalogue.current().levels:
        raise TrustError(f"assurance must be one of {', '.join(map(str, catalogue.current().levels))}")
    # require_jti: its statements must carry a jti, each accepted once (a statement is a bearer
    # artefact: anyone holding a copy can present it).
    return {"assurance_level": level, "require_jti": bool(given.get("require_jti", False))}


def _publisher_in_use(row: Publisher) -> str | None:
    used = db.session.scalar(select(func.count()).select_from(Client).where(Client.publisher_id == row.id))
    if used:
        return (f"{used} client(s) were registered with statements from {row.issuer!r}; "
                "retire them first (their provenance must stay on record)")
    return None


def _workload_fields(given: dict) -> dict:
    audience = given.get("audience")
    if not _name_ok(audience):
        raise TrustError("the audience its tokens carry for this server is required "
                         f"(printable, at most {MAX_LENGTH} characters)")
    pattern = given.get("subject_pattern") or None
    if pattern is not None and not _name_ok(pattern):
        raise TrustError(f"the subject pattern must be printable, at most {MAX_LENGTH} characters")
    return {"audience": audience.strip(), "subject_pattern": pattern}


PUBLISHERS = Kind("publisher", Publisher, "publisher", _publisher_fields, in_use=_publisher_in_use)
WORKLOAD_ISSUERS = Kind("workload issuer", WorkloadIssuer, "workload_issuer", _workload_fields,
                        default_algorithms=("ES256", "RS256"))


def add(kind: Kind, issuer: str, *, actor: str, jwks: dict | None = None, jwks_uri: str | None = None,
        algorithms: list[str] | None = None, **fields):
    """Trust ``issuer`` as ``kind``, with the kind's own ``fields``; audited, committed."""
    if not _name_ok(issuer):
        raise TrustError(f"the issuer must be a printable string of at most {MAX_LENGTH} characters")
    issuer = issuer.strip()
    if (jwks is None) == (jwks_uri is None):
        raise TrustError("give exactly one of a JWK Set or a jwks_uri")
    try:
        if jwks is not None:
            check_jwks(jwks)
        else:
            fetch.check_url(jwks_uri)
    except (KeySetError, fetch.FetchError) as exc:
        raise TrustError(str(exc)) from None
    algorithms = list(algorithms or (algorithms_for(jwks) if jwks is not None else kind.default_algorithms))
    if not algorithms:
        raise TrustError(f"a {kind.label} given by jwks_uri needs its algorithms (--alg)")
    if bad := [a for a in algorithms if a not in ASYMMETRIC_ALGS]:
        raise TrustError(f"not allowed algorithms: {', '.join(bad)} "
                         f"(asymmetric only: {', '.join(ASYMMETRIC_ALGS)})")
    own = kind.fields(fields)
    if get(kind, issuer) is not None:
        raise TrustError(f"{kind.label} {issuer!r} is already trusted")
    row = kind.model(issuer=issuer, jwks=jwks, jwks_uri=jwks_uri, algorithms=algorithms,
                     created_at=clock.now(), **own)
    db.session.add(row)
    audit.record(f"{kind.event}.added", actor,
                 data={"issuer": issuer, "jwks_uri": jwks_uri, "algorithms": algorithms, **own})
    db.session.commit()
    return row


def remove(kind: Kind, issuer: str, *, actor: str) -> None:
    row = get(kind, issuer)
    if row is None:
        raise TrustError(f"no {kind.label} {issuer!r}")
    if reason := kind.in_use(row):
        raise TrustError(reason)
    db.session.delete(row)
    audit.record(f"{kind.event}.removed", actor, data={"issuer": issuer})
    db.session.commit()


def get(kind: Kind, issuer: str):
    return db.session.execute(select(kind.model).where(kind.model.issuer == issuer)).scalar_one_or_none()


def listed(kind: Kind) -> list:
    return list(db.session.execute(select(kind.model).order_by(kind.model.issuer)).scalars())


def key_set(row) -> KeySet:
    """An issuer's verification keys (raises ``fetch.FetchError`` or ``KeySetError``)."""
    return resolve_jwks(row.jwks, row.jwks_uri)


def _name_ok(value) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_LENGTH and value.isprintable()
