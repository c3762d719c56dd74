"""What a person grants an agent: authorization codes, refresh tokens, remembered consent, and
the requests for access that wait with a pending registration."""
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime


class AuthorizationCode(db.Model):
    """RFC 6749 §4.1.2: issued by the authorization endpoint, stored as a keyed hash, bound to
    the client, the person, the redirect URI, the PKCE challenge (RFC 7636) and the resources
    (RFC 8707). Spending it records what its use issued: presented again, that is revoked
    (RFC 6749 §4.1.2, "SHOULD revoke … all tokens previously issued based on that code")."""

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    # RFC 6749 §4.1.3: the token request must repeat redirect_uri if the authorization request had it
    redirect_uri_given: Mapped[bool] = mapped_column(default=False)
    scopes: Mapped[list] = mapped_column(JSON)
    resources: Mapped[list] = mapped_column(JSON)
    code_challenge: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    spent_at = mapped_column(UTCDateTime)
    access_jti: Mapped[str | None] = mapped_column(String(64))  # issued when it was spent
    refresh_family: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(db.Model):
    """A refresh token, stored as a keyed hash. Each use rotates it (RFC 9700 §4.14.2): the
    used one is marked, a new one of the same family is issued, and presenting a used one again
    revokes the whole family and the access tokens issued with it."""

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[list] = mapped_column(JSON)
    resources: Mapped[list] = mapped_column(JSON)
    access_jti: Mapped[str] = mapped_column(String(64))  # the access token issued with it
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    used_at = mapped_column(UTCDateTime)
    revoked_at = mapped_column(UTCDateTime)


class Consent(db.Model):
    """A person's remembered consent to an agent, for these scopes: asked again for more."""

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id", ondelete="CASCADE"), primary_key=True)
    scopes: Mapped[list] = mapped_column(JSON)
    granted_at = mapped_column(UTCDateTime, nullable=False)


class AccessRequest(db.Model):
    """A person asked for a pending agent, with a reason: shown to whoever proofs it."""

    __table_args__ = (UniqueConstraint("client_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False)

    person = relationship("Person")
