"""The sequencer: seals recorded events into the hash chain and signs checkpoints of it.

Writers insert their events with nothing shared but the table (``app.audit.trail``), as
Certificate Transparency logs queue entries before a sequencer integrates them. Every server
process runs one sequencer thread (``start``), which every ``AUDIT_SEAL_SECONDS`` seals what is
waiting, in transactions of up to ``BATCH`` events: it locks the head row, so one sequencer
seals at a time across processes and instances (one that finds the head locked leaves the
work to the holder); it takes the unsealed events in the order the database numbered them,
gives each its ``seq`` and the hashes that link it to the one before, and moves the head. At
most every ``AUDIT_CHECKPOINT_SECONDS`` it also signs a checkpoint of the head: a JWS by the
issuer's signing key stating the chain's size and last hash, which an auditor keeps and later
hands to ``ostiary audit verify``. A whole trail rewritten by someone with the database but
not the key-encryption key no longer matches the checkpoints taken before.

Nothing of a token decision waits for this: the event is committed with the decision, and an
event whose writer died before it was sealed is sealed by the next sequencer to run.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from flask import Flask, current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, insert, select, update

from app.audit.trail import EVENT, GENESIS, HASHED, HEAD, HEAD_ID, digest
from app.extensions import db
from app.models import AuditCheckpoint
from app.support import clock
from app.support.untrusted_json import check_jwt

log = logging.getLogger(__name__)

# Events per sealing transaction: short, so that writers waiting for SQLite's lock get turns
# between batches.
BATCH = 100
CHECKPOINT_TYPE = "audit-checkpoint+jwt"  # never mistaken for an access token (at+jwt, RFC 8725 §3.11)
CHECKPOINT = AuditCheckpoint.__table__
# PostgreSQL: a sequencer that finds the head locked gets no row and leaves (SKIP LOCKED);
# SQLite: every write transaction already holds the one write lock.
LOCK_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID).with_for_update(skip_locked=True)
WAITING = (select(EVENT.c.id, *(EVENT.c[name] for name in HASHED if name != "seq"))
           .where(EVENT.c.seq.is_(None)).order_by(EVENT.c.id).limit(bindparam("limit")))
SEAL = (update(EVENT).where(EVENT.c.id == bindparam("event_id"))
        .values(seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash")))
MOVE_HEAD = update(HEAD).where(HEAD.c.id == HEAD_ID).values(seq=bindparam("to_seq"), hash=bindparam("to_hash"))
LAST_CHECKPOINT = select(CHECKPOINT.c.seq, CHECKPOINT.c.at).order_by(CHECKPOINT.c.seq.desc()).limit(1)


def seal(*, limit: int = BATCH, checkpoint: bool = False) -> int:
    """Seal up to ``limit`` waiting events, and sign a checkpoint if one is due (``checkpoint``:
    whatever the interval), in the session's transaction, which it commits (on SQLite a second
    connection would wait for the write lock the session may hold). Returns how many were
    sealed; 0 also when another sequencer holds the head."""
    connection = db.session.connection()
    try:
        sealed = _seal(connection, limit, checkpoint)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return sealed


def _seal(connection, limit: int, checkpoint: bool) -> int:
    head = connection.execute(LOCK_HEAD).first()
    if head is None:
        if connection.execute(select(HEAD.c.id).where(HEAD.c.id == HEAD_ID)).first() is not None:
            return 0  # locked: another sequencer is at work
        connection.execute(insert(HEAD).values(id=HEAD_ID, seq=0, hash=GENESIS))
        head = (0, GENESIS)
    seq, prev = head
    sealed = []
    for row in connection.execute(WAITING, {"limit": limit}).mappings():
        seq += 1
        link = digest({**row, "seq": seq}, prev)
        sealed.append({"event_id": row["id"], "new_seq": seq, "new_prev": prev, "new_hash": link})
        prev = link
    if sealed:
        connection.execute(SEAL, sealed)
        connection.execute(MOVE_HEAD, {"to_seq": seq, "to_hash": prev})
    _checkpoint_if_due(connection, seq, prev, force=checkpoint)
    return len(sealed)


def seal_all(*, checkpoint: bool = False) -> int:
    """Seal everything waiting now (batch after batch); returns how many. ``checkpoint``:
    then sign one of the head the last batch left, whatever the interval."""
    total = 0
    while True:
        n = seal()
        total += n
        if n < BATCH:
            break
    if checkpoint:
        seal(limit=0, checkpoint=True)  # seals nothing more; signs the head if no checkpoint has
    return total


def _checkpoint_if_due(connection, seq: int, hash_: str, *, force: bool) -> None:
    if seq == 0:
        return
    last = connection.execute(LAST_CHECKPOINT).first()
    if last is not None and last.seq >= seq:
        return
    interval = timedelta(seconds=float(current_app.config["AUDIT_CHECKPOINT_SECONDS"]))
    now = clock.now()
    if not force and last is not None and now - last.at < interval:
        return
    connection.execute(insert(CHECKPOINT).values(seq=seq, hash=hash_, at=now, jws=sign(seq, hash_, now)))


def sign(seq: int, hash_: str, at) -> str:
    """A checkpoint: the chain's size and last hash, signed by the active signing key."""
    kid, alg, key = current_app.extensions["ostiary.keys"].signer()
    claims = {"iss": current_app.config["ISSUER"], "iat": int(at.timestamp()), "audit_seq": seq,
              "audit_hash": hash_}
    return jwt.encode({"typ": CHECKPOINT_TYPE, "alg": alg, "kid": kid}, claims, key, algorithms=[alg])


def latest() -> dict | None:
    """The newest checkpoint, as ``ostiary audit checkpoint`` prints it."""
    row = db.session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).scalar()
    if row is None:
        return None
    return {"seq": row.seq, "hash": row.hash, "at": row.at.isoformat(), "checkpoint": row.jws}


class CheckpointError(ValueError):
    """The checkpoint is not one this issuer signed; the message says why."""


def read_checkpoint(jws: str, keys: KeySet | None = None) -> dict:
    """The ``seq`` and ``hash`` a checkpoint states, once its signature verifies with ``keys``
    (a JWKS an auditor keeps), or by default with the signing keys that the key-encryption key
    opens: a key row added by someone with the database alone is not one of those."""
    keys = keys if keys is not None else current_app.extensions["ostiary.keys"].opened_keys()
    try:
        check_jwt(jws)
        token = jwt.decode(jws.strip(), keys, algorithms=["ES256", "RS256"])
    except (JoseError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's signature does not verify ({exc})") from None
    claims = token.claims
    if token.header.get("typ") != CHECKPOINT_TYPE:
        raise CheckpointError(f"not an audit checkpoint (typ is {token.header.get('typ')!r})")
    if claims.get("iss") != current_app.config["ISSUER"]:
        raise CheckpointError(f"the checkpoint is of another issuer ({claims.get('iss')!r})")
    seq, hash_ = claims.get("audit_seq"), claims.get("audit_hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(hash_, str):
        raise CheckpointError("the checkpoint states no chain size and hash")
    return {"seq": seq, "hash": hash_}


# The process whose sequencer thread is running: after a fork, the child starts its own.
_started_in: int | None = None
_starting = threading.Lock()


def start(app: Flask) -> None:
    """Run this process's sequencer thread, unless ``AUDIT_SEAL_SECONDS`` is 0 (then only
    ``ostiary audit seal`` seals). Safe to call on every request: it starts once."""
    global _started_in
    interval = float(app.config["AUDIT_SEAL_SECONDS"])
    if interval <= 0 or _started_in == os.getpid():
        return
    with _starting:
        if _started_in == os.getpid():
            return
        threading.Thread(target=_run, args=(app, interval), name="ostiary-audit-sequencer",
                         daemon=True).start()
        _started_in = os.getpid()


def _run(app: Flask, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            with app.app_context():
                seal_all()
        except Exception:  # the next round tries again; a writer never waits for this one
            log.exception("the audit sequencer could not seal")


def init_app(app: Flask) -> None:
    @app.before_request
    def _ensure_sequencer():
        start(app)
