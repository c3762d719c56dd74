"""Console administrators (argon2 password hashes)."""
from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime


class Admin(db.Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at = mapped_column(UTCDateTime, nullable=False)
    last_login_at = mapped_column(UTCDateTime)
