"""Initial access tokens (RFC 7591 §3): what a registration needs under the
``initial_access_token`` policy. Single- or multi-use, expiring, hashed at rest.

A use is taken with one conditional UPDATE (``uses < max_uses``), inside the
registration's transaction: two registrations racing for the last use cannot
both get it, and a registration that fails gives its use back by rolling back.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from app import audit
from app.extensions import db
from app.models import InitialAccessToken
from app.support import clock, hashing

log = logging.getLogger(__name__)

PREFIX = "oiat_"
MAX_TTL = 365 * 24 * 3600


class InitialAccessTokenError(ValueError):
    """The token cannot be created or revoked as asked; the message says why."""


def create(*, max_uses: int = 1, ttl: int, actor: str, note: str | None = None) -> tuple[str, InitialAccessToken]:
    """A new token (returned once, stored as a hash)."""
    if not 1 <= max_uses <= 100_000:
        raise InitialAccessTokenError("uses must be between 1 and 100000")
    if not 60 <= ttl <= MAX_TTL:
        raise InitialAccessTokenError("lifetime must be between one minute and one year")
    token = hashing.generate(PREFIX)
    now = clock.now()
    row = InitialAccessToken(token_hash=hashing.hash_secret(token), max_uses=max_uses, uses=0,
                             expires_at=clock.in_(ttl), created_at=now, created_by=actor, note=note)
    db.session.add(row)
    db.session.flush()
    audit.record("iat.created", actor, data={"id": row.id, "max_uses": max_uses,
                                             "expires_at": row.expires_at.isoformat(), "note": note})
    db.session.commit()
    return token, row


def usable(token: str | None) -> bool:
    """Whether the token exists, has not expired and has a use left (no use is taken)."""
    if not token:
        return False
    row = db.session.execute(select(InitialAccessToken).where(
        InitialAccessToken.token_hash == hashing.hash_secret(token))).scalar_one_or_none()
    return row is not None and row.expires_at > clock.now() and row.uses < row.max_uses


def take_use(token: str) -> bool:
    """Atomically take one use in the caller's transaction (no commit). False if none was left."""
    result = db.session.execute(
        update(InitialAccessToken)
        .where(InitialAccessToken.token_hash == hashing.hash_secret(token),
               InitialAccessToken.uses < InitialAccessToken.max_uses,
               InitialAccessToken.expires_at > clock.now())
        .values(uses=InitialAccessToken.uses + 1)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def revoke(token_id: int, *, actor: str) -> InitialAccessToken:
    row = db.session.get(InitialAccessToken, token_id)
    if row is None:
        raise InitialAccessTokenError(f"no initial access token with id {token_id}")
    row.expires_at = min(row.expires_at, clock.now())
    audit.record("iat.revoked", actor, data={"id": token_id})
    db.session.commit()
    return row


def all_tokens() -> list[InitialAccessToken]:
    return list(db.session.execute(select(InitialAccessToken).order_by(InitialAccessToken.id)).scalars())
