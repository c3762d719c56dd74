"""A registered client (an agent or workload) and the approval that made it trusted."""
import re

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime

PENDING, ACTIVE, DENIED, SUSPENDED, EXPIRED, RETIRED = (
    "pending", "active", "denied", "suspended", "expired", "retired")
STATUSES = (PENDING, ACTIVE, DENIED, SUSPENDED, EXPIRED, RETIRED)
# A client id is Ostiary's 32 hex digits, or the https URL of a client ID metadata document
# (app.registration.documents), up to this many characters. On SQLite, which enforces no VARCHAR
# length, the declared type stays the one the first revision made: widening it there would
# rebuild every table that references a client, which SQLite does only with foreign keys off.
CLIENT_ID_MAX = 512
CLIENT_ID = String(CLIENT_ID_MAX).with_variant(String(64), "sqlite")


class Client(db.Model):
    client_id: Mapped[str] = mapped_column(CLIENT_ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False)
    updated_at = mapped_column(UTCDateTime, nullable=False)
    pending_expires_at = mapped_column(UTCDateTime)
    # The registered metadata (RFC 7591 §2), as validated, statement claims applied.
    client_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    client_name: Mapped[str | None] = mapped_column(String(255))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    jwks: Mapped[dict | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    secret_expires_at = mapped_column(UTCDateTime)
    # The secret before the last rotation, still accepted until ``previous_secret_until``
    # (OSTIARY_SECRET_ROTATION_GRACE), so that a rotation needs no outage.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_until = mapped_column(UTCDateTime)
    registration_token_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Provenance: a verified software statement's publisher, or self-asserted.
    software_id: Mapped[str | None] = mapped_column(String(255), index=True)
    software_statement: Mapped[str | None] = mapped_column(Text)
    publisher_id: Mapped[int | None] = mapped_column(ForeignKey("publisher.id"), index=True)
    # The address it registered from; for a metadata document, the host that publishes it.
    registered_from: Mapped[str | None] = mapped_column(String(255).with_variant(String(64), "sqlite"), index=True)
    # The names of the metadata values a publisher signed (the statement's claims, RFC 7591
    # §2.3): only a new statement of the same publisher and software_id changes them.
    signed_fields: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    # SHA-256 of the statement, so the pending queue can show one statement registered twice.
    statement_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    review_flags: Mapped[list] = mapped_column(JSON, default=list)  # e.g. display strings with controls
    # Counts changes of the registration; an approval names the version the reviewer saw.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # Tokens issued at or before this time are never valid again: set whenever the client
    # stops being active (suspension, return to review, expiry, retirement).
    tokens_not_before = mapped_column(UTCDateTime)
    # When the expiry sweep found the approval run out. An active client then becomes
    # expired; a suspended one stays suspended, its reason kept, and this says it also expired.
    approval_expired_at = mapped_column(UTCDateTime)
    # The current approval. No foreign key: client and approval reference each other,
    # and a cycle of constraints would need deferred creation on PostgreSQL.
    approval_id: Mapped[int | None] = mapped_column(Integer)

    approval = relationship("Approval", primaryjoin="foreign(Client.approval_id) == Approval.id")
    publisher = relationship("Publisher")

    @property
    def provenance(self) -> str:
        if self.publisher_id:
            return "publisher"
        return "document" if is_url_id(self.client_id) else "self-asserted"


def might_be_id(value) -> bool:
    """Could ``value`` name a client here? A string of 1 to CLIENT_ID_MAX characters, none of
    them a control character: no client id holds one, and a NUL would not even reach
    PostgreSQL (its text refuses it), so such a value is no client, said before any read."""
    return (isinstance(value, str) and 0 < len(value) <= CLIENT_ID_MAX
            and not any(c < " " or c == "\x7f" for c in value))


# A path segment of a URL client id (draft-ietf-oauth-client-id-metadata-document section 3 and
# RFC 3986 section 3.3, narrowed): unreserved characters and sub-delims but ';' (a parameter some
# servers cut the segment at: "..;" is ".." to them). No percent-encoding at all: "%2e", "%2f",
# "%5c" and a doubly encoded "%252e" are decoded by some servers into what the prefix of a trusted
# publisher was meant to exclude, and a document URL has no need of them. The document URLs
# (app.registration.documents) and the trusted publishers' prefixes (app.trust.document_publishers)
# are held to it alike.
URL_ID_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=]*")


def is_url_id(client_id) -> bool:
    """Is ``client_id`` a URL, the id of a client ID metadata document? Ostiary's own ids are hex."""
    return isinstance(client_id, str) and client_id.startswith(("https://", "http://"))


class Approval(db.Model):
    """The trust decision: who proofed the client, how, and what it may do."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id"), index=True)
    owner: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list] = mapped_column(JSON)
    audiences: Mapped[list] = mapped_column(JSON)
    # Resource identifiers this client *is* (a relying service): the role that may introspect
    # tokens addressed to them (RFC 7662 §4), distinct from being approved to call them.
    serves: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    max_token_ttl: Mapped[int] = mapped_column(Integer)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    review_at = mapped_column(UTCDateTime, nullable=False)
    assurance_level: Mapped[int] = mapped_column(Integer)
    proofing_method: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[str | None] = mapped_column(Text)
    proofed_by: Mapped[str] = mapped_column(String(255))
    approved_by: Mapped[str] = mapped_column(String(255))  # "admin:alice" or "policy:auto-approve"
    approved_at = mapped_column(UTCDateTime, nullable=False)
    # How this approval came to be: "approved" (from pending), "renewed" (the review: proofing
    # recorded again), "narrowed" or "widened" (an edit), each replacing the approval it names.
    change: Mapped[str] = mapped_column(String(16), default="approved", server_default=text("'approved'"))
    supersedes_id: Mapped[int | None] = mapped_column(Integer)


class InitialAccessToken(db.Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
