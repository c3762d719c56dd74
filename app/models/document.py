"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): the document a
URL client id names, as Ostiary last fetched it, and the publishers of documents an
administrator trusts (``app.registration.documents``)."""
from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime


class ClientDocument(db.Model):
    """The metadata document of a client whose ``client_id`` is its URL. ``document`` is the last
    one that validated (what ``client.client_metadata`` was made from); ``error`` says why the
    last fetch failed or was refused, None while the last fetch was good."""

    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id", ondelete="CASCADE"), primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    fetched_at = mapped_column(UTCDateTime, nullable=False)  # the last good fetch
    fresh_until = mapped_column(UTCDateTime, nullable=False)  # its HTTP caching, within the settings' bounds
    checked_at = mapped_column(UTCDateTime, nullable=False)  # the last attempt, good or not
    error: Mapped[str | None] = mapped_column(Text)


class DocumentPublisher(db.Model):
    """A publisher of metadata documents an administrator trusts: documents at URLs under
    ``prefix`` (an https origin and a path prefix) are approved by policy, within these scopes
    and audiences, for ``approval_days``."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(512), unique=True)
    owner: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list] = mapped_column(JSON)
    audiences: Mapped[list] = mapped_column(JSON)
    approval_days: Mapped[int] = mapped_column(Integer)
    assurance_level: Mapped[int] = mapped_column(Integer)
    proofing_method: Mapped[str] = mapped_column(String(64))
    created_at = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(255))
