"""Trusted issuers (``app.trust``): software publishers, their spent statement jtis, and
workload-identity issuers."""
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime


class Publisher(db.Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255), unique=True)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    algorithms: Mapped[list] = mapped_column(JSON)
    assurance_level: Mapped[int] = mapped_column(Integer)
    # Statements of this publisher must carry a jti, and each is accepted once (RFC 7591 §2.3
    # leaves replay to the server).
    require_jti: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at = mapped_column(UTCDateTime, nullable=False)


class StatementJti(db.Model):
    """A software statement's jti, spent: the primary key makes once-only atomic."""

    publisher_id: Mapped[int] = mapped_column(ForeignKey("publisher.id", ondelete="CASCADE"), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    used_at = mapped_column(UTCDateTime, nullable=False)


class WorkloadIssuer(db.Model):
    """Issuer of workload JWTs (SPIFFE JWT-SVID, Kubernetes, CI OIDC) accepted as subject tokens."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255), unique=True)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(255))
    algorithms: Mapped[list] = mapped_column(JSON)
    subject_pattern: Mapped[str | None] = mapped_column(String(255))  # fnmatch on `sub`; empty: any
    created_at = mapped_column(UTCDateTime, nullable=False)
