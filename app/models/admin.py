"""Console administrators (argon2 password hashes)."""
from sqlalchemy import Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime


class Admin(db.Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at = mapped_column(UTCDateTime, nullable=False)
    last_login_at = mapped_column(UTCDateTime)
    disabled_at = mapped_column(UTCDateTime)
    # Part of every console session of this administrator: raising it (logout, password change,
    # disabling) ends all of them at once, whatever cookies are still around.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class LoginFailure(db.Model):
    """A failed console login, counted per account and per address over a window: the limit
    holds across workers and instances because the count is in the shared database."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64), index=True)
    at = mapped_column(UTCDateTime, nullable=False, index=True)
