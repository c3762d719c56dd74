"""The append-only audit trail: events, the sealed chain's head, and its signed checkpoints.

An event is written in the transaction of the change it records, with only the ``id`` the
database gives it. The sequencer (``app.audit.sequencer``) later seals it: its place in the
chain (``seq``) and the hashes that link it to the event before, so edits, deletions,
reordering and truncation show."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.client import CLIENT_ID
from app.models.types import UTCDateTime

BIG_ID = BigInteger().with_variant(Integer, "sqlite")  # on SQLite an INTEGER PRIMARY KEY is the rowid


class AuditEvent(db.Model):
    """Indexed for the trail's searches (``app.audit.trail.matching``): by client, actor, type
    and time, and by ``seq`` for the chain (which also finds the unsealed: ``seq IS NULL``).
    ``jti`` and ``task_id``, which no search reads, have no index."""

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BIG_ID, unique=True)  # None until sealed
    at = mapped_column(UTCDateTime, nullable=False, index=True)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)  # "admin:alice", "client:…", "policy:…", "system"
    client_id: Mapped[str | None] = mapped_column(CLIENT_ID, index=True)
    jti: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(16))  # allow | deny
    reason: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditHead(db.Model):
    """One row: the last sealed event's ``seq`` and hash. Only the sequencer locks it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BIG_ID)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(db.Model):
    """A signed statement of the sealed chain's size and last hash (a JWS by the issuer's
    signing key), for auditors to keep outside the operator's reach."""

    seq: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    jws: Mapped[str] = mapped_column(Text)
