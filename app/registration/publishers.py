"""Trusted software publishers: whose software statements are believed (RFC 7591 §2.3).

An administrator registers a publisher with its issuer name, its public keys
(a JWK Set, or a ``jwks_uri`` fetched safely), the asymmetric algorithms its
statements may use, and the assurance level its statements carry.
"""
from __future__ import annotations

import logging

from joserfc.jwk import KeySet
from sqlalchemy import func, select

from .. import audit, clock, fetch
from ..extensions import db
from ..models import Client, Publisher
from . import scopes as catalogue
from .keys import ASYMMETRIC_ALGS, KeySetError, algorithms_for, check_jwks, resolve_jwks

log = logging.getLogger(__name__)


class PublisherError(ValueError):
    """The publisher cannot be added or removed as asked; the message says why."""


def add(issuer: str, *, jwks: dict | None = None, jwks_uri: str | None = None, assurance_level: int = 1,
        algorithms: list[str] | None = None, require_jti: bool = False, actor: str) -> Publisher:
    """A trusted publisher. ``require_jti``: its statements must carry a ``jti``, and each is
    accepted once (a statement is a bearer artefact: anyone holding a copy can present it)."""
    if not isinstance(issuer, str) or not issuer.strip() or len(issuer) > 255 or not issuer.isprintable():
        raise PublisherError("the issuer must be a printable string of at most 255 characters")
    if (jwks is None) == (jwks_uri is None):
        raise PublisherError("give exactly one of a JWK Set file or a jwks_uri")
    if get(issuer) is not None:
        raise PublisherError(f"publisher {issuer!r} already exists")
    if assurance_level not in catalogue.current().levels:
        raise PublisherError(f"assurance must be one of {', '.join(map(str, catalogue.current().levels))}")
    try:
        if jwks is not None:
            check_jwks(jwks)
        else:
            fetch.check_url(jwks_uri)
    except (KeySetError, fetch.FetchError) as exc:
        raise PublisherError(str(exc)) from None
    if algorithms:
        if bad := [a for a in algorithms if a not in ASYMMETRIC_ALGS]:
            raise PublisherError(f"not allowed algorithms: {', '.join(bad)} "
                                 f"(asymmetric only: {', '.join(ASYMMETRIC_ALGS)})")
    elif jwks is not None:
        algorithms = algorithms_for(jwks)
    else:
        raise PublisherError("a publisher given by jwks_uri needs its algorithms (--alg)")
    publisher = Publisher(issuer=issuer, jwks=jwks, jwks_uri=jwks_uri, algorithms=list(algorithms),
                          assurance_level=assurance_level, require_jti=bool(require_jti),
                          created_at=clock.now())
    db.session.add(publisher)
    audit.record("publisher.added", actor, data={"issuer": issuer, "jwks_uri": jwks_uri,
                                                 "algorithms": list(algorithms),
                                                 "assurance_level": assurance_level,
                                                 "require_jti": bool(require_jti)})
    db.session.commit()
    return publisher


def remove(issuer: str, *, actor: str) -> None:
    publisher = get(issuer)
    if publisher is None:
        raise PublisherError(f"no publisher {issuer!r}")
    used = db.session.scalar(select(func.count()).select_from(Client).where(Client.publisher_id == publisher.id))
    if used:
        raise PublisherError(f"{used} client(s) were registered with statements from {issuer!r}; "
                             "retire them first (their provenance must stay on record)")
    db.session.delete(publisher)
    audit.record("publisher.removed", actor, data={"issuer": issuer})
    db.session.commit()


def get(issuer: str) -> Publisher | None:
    return db.session.execute(select(Publisher).where(Publisher.issuer == issuer)).scalar_one_or_none()


def all_publishers() -> list[Publisher]:
    return list(db.session.execute(select(Publisher).order_by(Publisher.issuer)).scalars())


def key_set(publisher: Publisher) -> KeySet:
    """The publisher's verification keys (raises FetchError / KeySetError)."""
    return resolve_jwks(publisher.jwks, publisher.jwks_uri)
