"""Issued access tokens, tasks, and the client-assertion replay cache."""
from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.client import CLIENT_ID
from app.models.types import UTCDateTime


def _not_null_index(name: str, column: str) -> Index:
    """An index of the rows where ``column`` is set: the queries look up values, never NULL,
    and most tokens (every client_credentials token) have none, so they cost no entry."""
    where = f"{column} IS NOT NULL"
    return Index(name, column, sqlite_where=text(where), postgresql_where=text(where))


class IssuedToken(db.Model):
    """One row per issued access token: what introspection and revocation consult.

    Every index is written with each token on the token endpoint's hot path, so there is one
    per query, no more: a client's tokens and their times (the console's inventory, suspension),
    and the few tokens that have a parent (revocation's cascade) or a task (ending it)."""

    __table_args__ = (Index("ix_issued_token_client_id_issued_at", "client_id", "issued_at"),
                      _not_null_index("ix_issued_token_parent_jti", "parent_jti"),
                      _not_null_index("ix_issued_token_task_id", "task_id"))

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id"))
    subject: Mapped[str] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[list] = mapped_column(JSON, default=list)
    grant_type: Mapped[str] = mapped_column(String(80))
    parent_jti: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(ForeignKey("task.id"))
    issued_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    revoked_at = mapped_column(UTCDateTime)


class Task(db.Model):
    """A unit of agent work; ending it revokes every token issued for it."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id"), index=True)
    intent: Mapped[str] = mapped_column(Text)
    authorization_details: Mapped[list] = mapped_column(JSON)
    created_at = mapped_column(UTCDateTime, nullable=False)
    ended_at = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # done | failed | ended


class AssertionJti(db.Model):
    """RFC 7523 §3 item 7: a client assertion's jti is accepted once. The primary key makes it atomic."""

    client_id: Mapped[str] = mapped_column(CLIENT_ID, primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
