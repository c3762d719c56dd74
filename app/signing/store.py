"""The signing key set and its lifecycle.

States: ``next`` (published, not yet signing) -> ``active`` (signs) ->
``retiring`` (published until every token it signed has expired) -> ``retired``.
Publishing the next key before it signs, and the old one until its tokens
expire, is what lets a rotation never break a token in flight.

Each process keeps decrypted private keys (decrypted once per key) and its view
of which key is active for ``KEY_CACHE_SECONDS``; the database is the only
copy of the key set, so a rotation on one instance reaches all within that time.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import NamedTuple

from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import or_, select

from app import audit
from app.db import dbapi
from app.extensions import db
from app.models import SigningKey
from app.models.key import ACTIVE, NEXT, PUBLISHED, RETIRED, RETIRING
from app.signing import crypto
from app.support import clock

log = logging.getLogger(__name__)


def generate(alg: str, aead) -> SigningKey:
    key = ECKey.generate_key("P-256", private=True) if alg == "ES256" else RSAKey.generate_key(
        2048, private=True)
    kid = key.thumbprint()  # RFC 7638
    return SigningKey(kid=kid, alg=alg, state=NEXT, public_jwk=key.as_dict(private=False),
                      private_encrypted=crypto.encrypt(aead, key.as_pem(private=True), kid),
                      created_at=clock.now())


def ensure_keys(alg: str, aead) -> bool:
    """Create an active and a next key if there is no active key. Returns True if it made any."""
    if db.session.execute(select(SigningKey).where(SigningKey.state == ACTIVE)).first():
        return False
    active, upcoming = generate(alg, aead), generate(alg, aead)
    active.state, active.activated_at = ACTIVE, clock.now()
    db.session.add_all([active, upcoming])
    audit.record("key.created", "system", data={"active": active.kid, "next": upcoming.kid})
    db.session.commit()
    return True


def rotate(alg: str, aead, actor: str, max_token_ttl: int) -> dict:
    """next -> active -> retiring; a new next; retiring keys older than any token -> retired."""
    now = clock.now()
    keys = db.session.execute(
        select(SigningKey).where(SigningKey.state.in_(PUBLISHED)).with_for_update()
    ).scalars().all()
    by_state = {state: [k for k in keys if k.state == state] for state in PUBLISHED}
    retired = []
    for key in by_state[RETIRING]:
        if key.retiring_at + timedelta(seconds=max_token_ttl) <= now:
            key.state, key.retired_at = RETIRED, now
            retired.append(key.kid)
    for key in by_state[ACTIVE]:
        key.state, key.retiring_at = RETIRING, now
    promoted = by_state[NEXT][0] if by_state[NEXT] else generate(alg, aead)
    promoted.state, promoted.activated_at = ACTIVE, now
    upcoming = generate(alg, aead)
    db.session.add_all([promoted, upcoming])
    change = {"active": promoted.kid, "next": upcoming.kid,
              "retiring": [k.kid for k in by_state[ACTIVE]], "retired": retired}
    audit.record("key.rotated", actor, data=change)
    db.session.commit()
    return change


class KeyRecord(NamedTuple):
    """What a process reads of a published key."""
    kid: str
    alg: str
    state: str
    public_jwk: dict
    private_encrypted: bytes


_KEY = SigningKey.__table__
# On the driver in autocommit (app.db.dbapi): the refresh runs inside token requests, inline on the
# event loop, where an ORM transaction on SQLite would begin by waiting for the write lock.
LOAD_PUBLISHED = (select(*(_KEY.c[name] for name in KeyRecord._fields))
                  .where(or_(*(_KEY.c.state == state for state in PUBLISHED)))  # (IN expands at run time)
                  .order_by(_KEY.c.created_at))


class KeyStore:
    """Per-process view of the key set: the active signer and the JWKS document."""

    def __init__(self, aead, cache_seconds: int):
        self._aead = aead
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._private: dict[str, object] = {}  # kid -> decrypted key, for the life of the process
        self._loaded_at = -1e18
        self._active: tuple[str, str] | None = None
        self._jwks: dict = {"keys": []}
        self._public = KeySet([])

    def refresh(self, force: bool = False) -> None:
        if not force and clock.timestamp() - self._loaded_at < self._cache_seconds:
            return
        with self._lock:
            rows = [KeyRecord(*row) for row in dbapi.fetch_all(LOAD_PUBLISHED, {})]
            active = next((k for k in rows if k.state == ACTIVE), None)
            if active is None:
                raise LookupError("no active signing key: run `ostiary init`")
            self._decrypt(active)
            self._active = (active.kid, active.alg)
            self._jwks = {"keys": [self.public_jwk(k) for k in rows]}
            self._public = KeySet.import_key_set(self._jwks)
            self._loaded_at = clock.timestamp()

    def check_decrypts(self) -> None:
        """Start-up check: the KEK opens the active key (raises WrongKeyEncryptionKey)."""
        self.refresh(force=True)

    @staticmethod
    def public_jwk(row: KeyRecord) -> dict:
        return {**row.public_jwk, "kid": row.kid, "use": "sig", "alg": row.alg}

    def signer(self) -> tuple[str, str, object]:
        """(kid, alg, private key) of the active key."""
        self.refresh()
        kid, alg = self._active
        return kid, alg, self._private[kid]

    def jwks(self) -> dict:
        self.refresh()
        return self._jwks

    def verification_keys(self) -> KeySet:
        self.refresh()
        return self._public

    def opened_keys(self) -> KeySet:
        """The public keys of every stored key that the key-encryption key opens, whatever its
        state: a key row added by someone with the database alone is not among them."""
        keys = []
        for row in db.session.execute(select(SigningKey)).scalars():
            try:
                key = open_key(self._aead, row)
            except crypto.WrongKeyEncryptionKey:
                log.warning("signing key %s does not open with the key-encryption key; not trusted", row.kid)
                continue
            keys.append({**key.as_dict(private=False), "kid": row.kid, "alg": row.alg})
        return KeySet.import_key_set({"keys": keys})

    def _decrypt(self, row: KeyRecord):
        if row.kid not in self._private:
            self._private[row.kid] = open_key(self._aead, row)
        return self._private[row.kid]


def open_key(aead, row) -> ECKey | RSAKey:
    """The private key of a stored signing key (a ``SigningKey`` or ``KeyRecord``), opened with
    the key-encryption key; raises ``crypto.WrongKeyEncryptionKey`` if it does not open it."""
    pem = crypto.decrypt(aead, row.private_encrypted, row.kid)
    return (ECKey if row.alg == "ES256" else RSAKey).import_key(pem)
