"""Signing keys and their lifecycle: next -> active -> retiring -> retired."""
from sqlalchemy import JSON, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime

NEXT, ACTIVE, RETIRING, RETIRED = "next", "active", "retiring", "retired"
PUBLISHED = (NEXT, ACTIVE, RETIRING)


class SigningKey(db.Model):
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint
    alg: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), index=True)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    private_encrypted: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM under the KEK
    created_at = mapped_column(UTCDateTime, nullable=False)
    activated_at = mapped_column(UTCDateTime)
    retiring_at = mapped_column(UTCDateTime)
    retired_at = mapped_column(UTCDateTime)
