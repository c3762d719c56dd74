"""Issued access tokens, tasks, and the client-assertion replay cache."""
from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime


class IssuedToken(db.Model):
    """One row per issued access token: what introspection and revocation consult."""

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[list] = mapped_column(JSON, default=list)
    grant_type: Mapped[str] = mapped_column(String(80))
    parent_jti: Mapped[str | None] = mapped_column(String(64), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("task.id"), index=True)
    issued_at = mapped_column(UTCDateTime, nullable=False, index=True)
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

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
