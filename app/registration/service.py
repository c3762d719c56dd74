"""Registration services: RFC 7591 register, RFC 7592 read / update / delete.

HTTP views and tests call these with plain values. ``register`` stores nothing
unless every check passed: the client row, the initial access token's use and
the audit event are one transaction.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.models import Approval, Client
from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, RETIRED, SUSPENDED
from app.policy import scopes as catalogue
from app.registration import iat, lifecycle, statements
from app.registration.errors import (
    AccessDeniedError,
    InvalidClientMetadataError,
    InvalidRequestError,
    InvalidSoftwareStatementError,
    InvalidTokenError,
    PendingLimitError,
)
from app.registration.metadata import AUDIENCES, validate
from app.support import clock, hashing, resources

log = logging.getLogger(__name__)

AUTO_APPROVER = "policy:auto-approve"
# Read-only fields of the client information response (RFC 7592 §3); a PUT may echo them, never change them.
READ_ONLY = ("client_id", "client_id_issued_at", "registration_client_uri", "client_secret_expires_at",
             "status", "software_id")
STATUS_TEXT = {
    PENDING: "pending approval: token requests are refused with unauthorized_client until an "
             "administrator approves this registration; do not register again",
    ACTIVE: "active: approved, tokens may be requested within the approval",
    DENIED: "denied: this registration was refused and will not be approved",
    SUSPENDED: "suspended: token requests are refused until an administrator reactivates this client",
    EXPIRED: "expired: the approval ran out; register again to be reviewed",
    RETIRED: "retired",
}


@dataclass
class Registration:
    client: Client
    client_secret: str | None
    registration_access_token: str
    response: dict  # the client information response (RFC 7591 §3.2.1) as committed


def register(metadata: dict, *, address: str | None, initial_access_token: str | None = None) -> Registration:
    """RFC 7591 §3.1: validate, store as pending (or approve by policy), audit."""
    config = current_app.config
    if not isinstance(metadata, dict):
        raise InvalidRequestError("the request body must be a JSON object of client metadata")
    policy = config["REGISTRATION_POLICY"]
    if policy == "initial_access_token" and not iat.usable(initial_access_token):
        raise InvalidTokenError("registration here needs a valid initial access token in the "
                                "Authorization header (Bearer)" if not initial_access_token else
                                "the initial access token is unknown, expired or used up")
    statement = None
    if metadata.get("software_statement") is not None:
        statement = statements.verify(metadata["software_statement"])
    elif policy == "software_statement":
        raise InvalidSoftwareStatementError("registration here needs a software_statement from a "
                                            "trusted publisher")
    publisher = statement.publisher if statement else None
    # RFC 7591 §2.3: values in the statement take precedence over the same plain fields.
    merged = {k: v for k, v in metadata.items() if k != "software_statement"}
    merged.update(statement.metadata if statement else {})
    clean, flags = validate(merged)
    now = clock.now()
    _check_pending_caps(address, publisher, now)

    # hex: URL-safe, and never starting with "-", which a command line would take for an option
    client = Client(client_id=secrets.token_hex(16), status=PENDING, created_at=now, updated_at=now,
                    pending_expires_at=now + timedelta(seconds=config["PENDING_TTL"]),
                    client_metadata=clean, client_name=clean.get("client_name"),
                    token_endpoint_auth_method=clean["token_endpoint_auth_method"],
                    jwks=clean.get("jwks"), jwks_uri=clean.get("jwks_uri"),
                    software_id=clean.get("software_id"),
                    software_statement=metadata.get("software_statement") if publisher else None,
                    publisher_id=publisher.id if publisher else None, registered_from=address,
                    signed_fields=_signed(statement, clean), statement_digest=statement and statement.digest,
                    review_flags=flags, version=1)
    secret = None
    if client.token_endpoint_auth_method in lifecycle.SECRET_METHODS:
        secret, _ = lifecycle.new_secret(client)
    token = hashing.generate()
    client.registration_token_hash = hashing.hash_secret(token)
    db.session.add(client)
    if statement is not None:
        try:
            statements.spend(statement)
        except InvalidSoftwareStatementError:
            db.session.rollback()
            raise
    if policy == "initial_access_token" and not iat.take_use(initial_access_token):
        db.session.rollback()
        raise InvalidTokenError("the initial access token is unknown, expired or used up")
    audit.record("client.registered", f"client:{client.client_id}", client_id=client.client_id, data={
        "client_name": client.client_name, "provenance": client.provenance,
        "publisher": publisher.issuer if publisher else None, "software_id": client.software_id,
        "signed_fields": client.signed_fields, "statement_sha256": client.statement_digest,
        "token_endpoint_auth_method": client.token_endpoint_auth_method, "scope": clean.get("scope"),
        "review_flags": flags, "initial_access_token": policy == "initial_access_token"})
    # Read before the commit, which expires the client: read after it, it would be loaded again
    # in a new transaction, on SQLite one more hold of the write lock (BEGIN IMMEDIATE).
    response = client_info(client, client_secret=secret, registration_access_token=token)
    logged = (client.client_id, address, client.provenance)
    db.session.commit()
    log.info("client %r registered from %s (%s)", *logged)
    if statement is not None and config["AUTO_APPROVE"]:
        _auto_approve(client, statement)
        response = client_info(client, client_secret=secret, registration_access_token=token)
    return Registration(client, secret, token, response)


def authenticate(client_id: str, token: str | None) -> Client:
    """RFC 7592 §2: the registration access token of *this* client, compared in constant time.

    An unknown client, a wrong token and a retired client get the same answer, so
    the endpoint does not reveal which client ids exist.
    """
    client = db.session.get(Client, client_id) if client_id else None
    # An unknown or retired client still costs one hash comparison, like a wrong token.
    stored = client.registration_token_hash if client is not None and client.status != RETIRED else "0" * 64
    if not hashing.verify(token, stored) or client is None or client.status == RETIRED:
        raise InvalidTokenError("missing or invalid registration access token for this client")
    return client


def client_info(client: Client, *, client_secret: str | None = None,
                registration_access_token: str | None = None) -> dict:
    """The client information response (RFC 7591 §3.2.1, RFC 7592 §3) plus its status.

    The registration access token is only in the registration response: it is
    stored as a hash, so later reads cannot repeat it (RFC 7592 §3 would have
    us rotate it on every read, which locks out a client that loses one answer).
    """
    body = dict(client.client_metadata or {})
    body.update(client_id=client.client_id, client_id_issued_at=int(client.created_at.timestamp()),
                registration_client_uri=f"{current_app.config['ISSUER']}/register/{client.client_id}",
                status=client.status, status_description=STATUS_TEXT[client.status])
    if client.token_endpoint_auth_method in lifecycle.SECRET_METHODS and client.secret_expires_at:
        body["client_secret_expires_at"] = int(client.secret_expires_at.timestamp())
    if client_secret:
        body["client_secret"] = client_secret
    if registration_access_token:
        body["registration_access_token"] = registration_access_token
    if client.software_id:
        body["software_id"] = client.software_id
    if client.status == PENDING and client.pending_expires_at:
        body["pending_expires_at"] = int(client.pending_expires_at.timestamp())
    return body


def update(client: Client, metadata: dict) -> Client:
    """RFC 7592 §2.2: replace the metadata, validated as strictly as registration.

    A client never changes its own status, approval, client_id or software_id. Values a
    publisher signed (``signed_fields``) change only with a new valid statement of the same
    publisher and software_id (RFC 7591 §2.3: statement values take precedence); left out of
    the request, they stay. An active client goes back to pending, for a new review, when it
    asks for more than its approval (scopes, audiences, grant types) or changes how it is
    recognised (keys, key URI, redirect URIs) with values no new statement signs. Every change
    raises the registration's ``version``, so an approval of what was reviewed before fails.
    """
    if not isinstance(metadata, dict):
        raise InvalidRequestError("the request body must be a JSON object of client metadata")
    # Locked, and read afresh, as an approval locks it: an update and an approval of the same
    # registration take turns, so an approval never lands between this read and this write.
    client = lifecycle.get_client(client.client_id, lock=True)
    if client.status not in (PENDING, ACTIVE):
        raise AccessDeniedError(f"a {client.status} client cannot update its registration")
    if metadata.get("client_id") != client.client_id:
        raise InvalidClientMetadataError("the body must carry this client's client_id (RFC 7592 §2.2)")
    if "registration_access_token" in metadata:
        raise InvalidRequestError("registration_access_token must not be sent in the body (RFC 7592 §2.2)")
    current = client_info(client)
    for name in READ_ONLY:
        if name in metadata and metadata[name] != current.get(name):
            raise InvalidClientMetadataError(f"{name} is set by the server and cannot be changed")
    if "client_secret" in metadata and not hashing.verify(metadata["client_secret"], client.secret_hash):
        raise InvalidClientMetadataError("client_secret does not match; a client cannot choose its secret")
    statement = None
    if metadata.get("software_statement") is not None:
        statement = statements.verify(metadata["software_statement"])
        if statement.publisher.id != client.publisher_id or statement.metadata.get("software_id") != client.software_id:
            raise InvalidSoftwareStatementError("the statement is not from this client's publisher "
                                                "and software_id")
    before = client.client_metadata or {}
    merged = {k: v for k, v in metadata.items() if k not in READ_ONLY and k != "software_statement"}
    if statement is not None:
        merged.update(statement.metadata)
    else:
        _keep_signed(client, merged)
    if client.software_id:
        merged["software_id"] = client.software_id
    clean, flags = validate(merged)
    if statement is None:
        _check_signed_unchanged(client, before, clean)
    if clean["token_endpoint_auth_method"] != client.token_endpoint_auth_method:
        raise InvalidClientMetadataError("token_endpoint_auth_method cannot be changed; register a new client")
    changed = sorted(k for k in set(before) | set(clean) if before.get(k) != clean.get(k))
    signed = _signed(statement, clean) if statement is not None else list(client.signed_fields or [])
    back_to_review = _widening(client, clean) or _recognition_changed(client, before, clean, signed, statement)
    now = clock.now()
    # The statement it registered with, sent again, is no new statement: nothing to spend.
    new_statement = statement is not None and statement.digest != client.statement_digest
    if new_statement:
        statements.spend(statement)
        client.software_statement, client.statement_digest = metadata["software_statement"], statement.digest
    if changed or new_statement:
        client.version += 1
    client.client_metadata, client.client_name, client.signed_fields = clean, clean.get("client_name"), signed
    client.jwks, client.jwks_uri, client.review_flags = clean.get("jwks"), clean.get("jwks_uri"), flags
    client.updated_at = now
    if back_to_review:
        lifecycle.back_to_review(client, f"update needs a new review: {back_to_review}", now)
    audit.record("client.updated", f"client:{client.client_id}", client_id=client.client_id, data={
        "changed": changed, "version": client.version, "back_to_pending": back_to_review or None,
        "review_flags": flags, "signed_fields": signed,
        "statement_sha256": statement.digest if statement is not None else None})
    db.session.commit()
    return client


def delete(client: Client) -> None:
    """RFC 7592 §2.3: the client deprovisions itself; it is retired and its tokens revoked."""
    lifecycle.retire(client.client_id, actor=f"client:{client.client_id}",
                     reason="deleted by the client (RFC 7592)")


def related(client: Client) -> list[Client]:
    """Other registrations of the same software_id, for the reviewer to see together."""
    if not client.software_id:
        return []
    return list(db.session.execute(
        select(Client).where(Client.software_id == client.software_id, Client.client_id != client.client_id)
        .order_by(Client.created_at)).scalars())


def same_statement(client: Client) -> list[Client]:
    """Other registrations that presented the very same software statement (a replayed copy)."""
    if not client.statement_digest:
        return []
    return list(db.session.execute(
        select(Client).where(Client.statement_digest == client.statement_digest,
                             Client.client_id != client.client_id).order_by(Client.created_at)).scalars())


def _signed(statement, clean: dict) -> list[str]:
    """The names of the stored metadata values that ``statement`` signed."""
    if statement is None:
        return []
    return sorted(k for k in statement.metadata if k in clean)


def _keep_signed(client: Client, merged: dict) -> None:
    """An update without a statement: signed values it leaves out stay as signed. A key set
    that was signed pins both ways of giving keys (``jwks`` and ``jwks_uri``)."""
    signed = set(client.signed_fields or [])
    stored = client.client_metadata or {}
    if signed & set(statements.KEY_FIELDS):
        for name in statements.KEY_FIELDS:
            if name not in stored and merged.get(name) is not None:
                raise InvalidClientMetadataError(
                    f"{name} cannot be set: the key set was signed by the publisher's software statement; "
                    "send a new statement of the same publisher and software_id to change it")
    for name in signed:
        if name not in merged and name in stored:
            merged[name] = stored[name]


def _check_signed_unchanged(client: Client, before: dict, clean: dict) -> None:
    """RFC 7591 §2.3: a value a publisher signed is changed only by a new statement."""
    changed = sorted(name for name in client.signed_fields or [] if clean.get(name) != before.get(name))
    if changed:
        raise InvalidClientMetadataError(
            f"{', '.join(changed)} {'was' if len(changed) == 1 else 'were'} signed by the publisher's software "
            "statement; send a new statement of the same publisher and software_id to change "
            f"{'it' if len(changed) == 1 else 'them'}")


RECOGNITION = ("jwks", "jwks_uri", "redirect_uris", "token_endpoint_auth_method", "token_endpoint_auth_signing_alg")


def _recognition_changed(client: Client, before: dict, clean: dict, signed: list[str], statement) -> str | None:
    """The ways the client is recognised (keys, key URI, redirect URIs, authentication method)
    that an update of an active client changes with values no new statement signs: whoever
    holds the registration access token could otherwise swap in their own key unreviewed."""
    if client.status != ACTIVE:
        return None
    vouched = set(signed) if statement is not None else set()
    changed = [name for name in RECOGNITION if before.get(name) != clean.get(name) and name not in vouched]
    return f"{', '.join(changed)} changed" if changed else None


def _widening(client: Client, clean: dict) -> str | None:
    if client.status != ACTIVE:
        return None
    return beyond_approval(client, clean)


def beyond_approval(client: Client, clean: dict) -> str | None:
    """What ``clean`` asks for beyond the client's approval (scopes, audiences, grant types),
    whatever its status; None if nothing, or if it has no approval."""
    if client.approval is None:
        return None
    approval: Approval = client.approval
    more = [s for s in clean.get("scope", "").split() if s not in approval.scopes]
    more += resources.match(clean.get(AUDIENCES, []), approval.audiences)[1]  # RFC 3986 §6.2.2.1
    more += [g for g in clean["grant_types"] if g not in (client.client_metadata or {}).get("grant_types", [])]
    return ", ".join(more) or None


def _check_pending_caps(address: str | None, publisher, now) -> None:
    config = current_app.config
    if address and _at_cap(Client.registered_from == address, config["PENDING_CAP_PER_ADDRESS"], now):
        raise PendingLimitError("too many registrations from this address are waiting for approval; "
                                "wait for them to be decided")
    if publisher is not None and _at_cap(Client.publisher_id == publisher.id,
                                         config["PENDING_CAP_PER_PUBLISHER"], now):
        raise PendingLimitError("too many registrations of this publisher's software are waiting for "
                                "approval; wait for them to be decided")


def _at_cap(whose, cap: int, now) -> bool:
    """Whether ``cap`` registrations matching ``whose`` are pending; a cap of 0 is no cap. The
    count stops at the cap, so its cost does not grow with a lifted cap's thousands."""
    if cap <= 0:
        return False
    pending = (select(Client.client_id)
               .where(whose, Client.status == PENDING, Client.pending_expires_at > now).limit(cap))
    return db.session.scalar(select(func.count()).select_from(pending.subquery())) >= cap


def _auto_approve(client: Client, statement: statements.Verified) -> None:
    """The auto-approval policy (AUTO_APPROVE, off by default): a statement from a trusted publisher
    that names this server, binds the key set or is accepted once (``Verified.may_auto_approve``),
    and whose assurance level covers every requested scope is approved, naming the policy as
    approver."""
    config, publisher, meta = current_app.config, client.publisher, client.client_metadata
    scopes, audiences = meta.get("scope", "").split(), meta.get(AUDIENCES, [])
    cat = catalogue.current()
    if why := statement.may_auto_approve():
        log.info("client %r left pending: auto-approval refused: %s", client.client_id, why)
        return
    if not scopes or not audiences or cat.unknown(scopes) or cat.above(scopes, publisher.assurance_level):
        log.info("client %r left pending: auto-approval needs scopes within assurance %d and audiences",
                 client.client_id, publisher.assurance_level)
        return
    expires_at = clock.in_(config["AUTO_APPROVE_TTL"])
    try:
        lifecycle.approve(
            client.client_id, version=client.version, owner=publisher.issuer,
            purpose=f"{client.client_name or client.software_id} ({client.software_id}), "
                    f"software statement from {publisher.issuer}",
            scopes=scopes, audiences=audiences, max_token_ttl=int(config["ACCESS_TOKEN_TTL"]),
            expires_at=expires_at, review_at=expires_at, assurance_level=publisher.assurance_level,
            proofing_method="software_statement", evidence=f"software_statement sha256:{statement.digest}",
            actor=AUTO_APPROVER)
    except lifecycle.LifecycleError as exc:
        db.session.rollback()
        log.info("client %r left pending: auto-approval refused: %s", client.client_id, exc)
