"""People: the persons on whose behalf agents act, apart from the console's administrators."""
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime

LOCAL, OIDC = "local", "oidc"
SOURCES = (LOCAL, OIDC)


class Person(db.Model):
    """A person: signed in with a local password now, from an OpenID Connect issuer later.

    ``public_id`` is the ``sub`` of the tokens issued for them: random, opaque, never changed
    and never reused (people are disabled, never deleted). ``id`` is for the database's joins only.
    """

    __table_args__ = (
        UniqueConstraint("issuer", "subject"),
        # A local person signs in with a username; one from an issuer is that issuer's subject.
        CheckConstraint("(source = 'local' AND username IS NOT NULL AND issuer IS NULL AND subject IS NULL) OR "
                        "(source = 'oidc' AND issuer IS NOT NULL AND subject IS NOT NULL)", name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    display_name: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id (app.support.passwords)
    groups: Mapped[list] = mapped_column(JSON, default=list)
    created_at = mapped_column(UTCDateTime, nullable=False)
    last_login_at = mapped_column(UTCDateTime)
    disabled_at = mapped_column(UTCDateTime)
    # Part of every session of this person: raising it (signing out, a password change,
    # disabling) ends all of them at once, whatever cookies are still around.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
