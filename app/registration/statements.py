"""Software statements (RFC 7591 §2.3): a JWT in which a trusted publisher vouches
for the metadata of its software.

Verified with the keys of the publisher named by ``iss`` only, with that
publisher's asymmetric algorithms only. A key the statement names itself
(``jwk``, ``jku``, ``x5u``, ``x5c`` headers) is never used: it would let anyone
vouch for themselves. Authlib's RFC 7591 endpoint only checks the signature;
the claim checks here (``iss`` known, ``iat``/``exp``/``nbf`` sane, ``aud`` if
present names us, ``software_id`` present) are ours.

A statement is a bearer artefact: anyone who holds a copy can present it (RFC 7591 §2.3
leaves replay to the server). So what it proves is the values it signs, not who sent it:
those values are pinned on the client (``Client.signed_fields``) and only a new statement
of the same publisher and ``software_id`` changes them; a publisher configured with
``require_jti`` has each statement accepted once; and auto-approval asks more of a
statement than registration does (``Verified.may_auto_approve``).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from flask import current_app
from joserfc import jws, jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import Publisher, StatementJti
from app.registration.errors import (
    InvalidSoftwareStatementError,
    UnapprovedSoftwareStatementError,
)
from app.support import clock, fetch, jwt_claims
from app.support.untrusted_json import UntrustedJSONError, check_jwt, loads
from app.trust import issuers
from app.trust.keysets import ASYMMETRIC_ALGS, KeySetError

log = logging.getLogger(__name__)

MAX_LENGTH = 16 * 1024
# JWT claims that describe the statement itself, not the client (RFC 7519 §4.1).
RESERVED = {"iss", "sub", "aud", "iat", "exp", "nbf", "jti"}
KEY_FIELDS = ("jwks", "jwks_uri")
# What is wrong with a statement whose claim joserfc refuses, by the claim (the error's ``claim``).
CLAIM_REFUSALS = {
    "iat": "software_statement must have a numeric iat claim, not in the future",
    "exp": "software_statement has expired",  # or its exp is not a number
    "nbf": "software_statement is not valid yet (nbf)",
    "aud": "software_statement aud does not name this server",
    "jti": "software_statement jti must be a string of at most 255 characters",
}


@dataclass(frozen=True)
class Verified:
    """A statement that verified: its publisher, the client metadata it signs, and what it
    says about itself."""

    publisher: Publisher
    metadata: dict          # the signed client metadata claims (RFC 7591 §2.3)
    names_us: bool          # its aud names this server
    jti: str | None
    digest: str             # SHA-256 of the statement, to show one statement used twice

    @property
    def signs_keys(self) -> bool:
        return any(self.metadata.get(name) is not None for name in KEY_FIELDS)

    def may_auto_approve(self) -> str | None:
        """Why this statement is not enough for auto-approval, or None. A copy of a statement
        must not become an active client with the copier's credentials: it has to be meant
        for this server (``aud``) and either bind the key set or be accepted only once."""
        if not self.names_us:
            return "the statement's aud does not name this server"
        if not self.signs_keys and not self.publisher.require_jti:
            return "the statement signs no key set and its publisher does not require a once-only jti"
        return None


def verify(statement) -> Verified:
    """The verified statement, or raises an RFC 7591 §3.2.2 error."""
    if not isinstance(statement, str) or len(statement) > MAX_LENGTH or statement.count(".") != 2:
        raise InvalidSoftwareStatementError(f"software_statement must be a signed JWT (compact JWS) "
                                            f"of at most {MAX_LENGTH} characters")
    try:
        check_jwt(statement, what="its")  # before joserfc, whose JSON parser recurses
    except UntrustedJSONError as exc:
        raise InvalidSoftwareStatementError(f"software_statement is not a well-formed JWT: {exc}") from None
    try:
        unverified = jws.extract_compact(statement.encode())
        header = unverified.headers()
        claims = loads(unverified.payload)
    except (JoseError, ValueError, TypeError):
        raise InvalidSoftwareStatementError("software_statement is not a well-formed JWT") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise InvalidSoftwareStatementError("software_statement has no iss claim")
    publisher = issuers.get(issuers.PUBLISHERS, claims["iss"])
    if publisher is None:
        raise UnapprovedSoftwareStatementError(f"software statements from {claims['iss']!r} are not "
                                               "trusted by this server")
    algorithms = [a for a in publisher.algorithms if a in ASYMMETRIC_ALGS]
    if header.get("alg") not in algorithms:
        raise InvalidSoftwareStatementError(f"software_statement alg {header.get('alg')!r} is not allowed "
                                            f"for this publisher ({', '.join(algorithms)})")
    # The keys may have to be fetched, which can take seconds: the reads' transaction ends
    # first. On SQLite it holds the write lock, which every writer, token issuance included,
    # would wait for. The publisher stays loaded, detached, for the caller.
    db.session.expunge(publisher)
    db.session.rollback()
    try:
        key_set = issuers.key_set(publisher)
    except (fetch.FetchError, KeySetError) as exc:
        log.warning("keys of publisher %r unavailable: %s", publisher.issuer, exc)
        raise InvalidSoftwareStatementError("the publisher's keys could not be obtained; try again later") from None
    # With a kid, only that key; without one, any of the publisher's keys of the right type.
    candidates = [k for k in key_set if k.kid == header["kid"]] if header.get("kid") else list(key_set)
    if not any(_verifies(statement, key, algorithms) for key in candidates):
        raise InvalidSoftwareStatementError("software_statement signature does not verify with the keys "
                                            "of its publisher")
    _check_claims(claims)
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 255):
        raise InvalidSoftwareStatementError("software_statement jti must be a string of at most 255 characters")
    if publisher.require_jti and jti is None:
        raise InvalidSoftwareStatementError("statements of this publisher must carry a jti: each is accepted once")
    # _check_claims refused an aud that does not name this server: present means it names us.
    return Verified(publisher=publisher, metadata={k: v for k, v in claims.items() if k not in RESERVED},
                    names_us=claims.get("aud") is not None, jti=jti,
                    digest=hashlib.sha256(statement.encode()).hexdigest())


def spend(verified: Verified) -> None:
    """Spend the statement's jti in the caller's transaction, if its publisher accepts each
    statement once; a second use is refused. The primary key makes it atomic across processes
    and instances: a concurrent copy waits for the first to commit, then finds the row."""
    if not verified.publisher.require_jti:
        return
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[db.session.get_bind().dialect.name]
    spent = db.session.execute(
        insert(StatementJti).values(publisher_id=verified.publisher.id, jti=verified.jti, used_at=clock.now())
        .on_conflict_do_nothing().returning(StatementJti.jti)).first()
    if spent is None:
        raise InvalidSoftwareStatementError("software_statement was already used: this publisher's "
                                            "statements are accepted once (jti)")


def _verifies(statement: str, key, algorithms: list[str]) -> bool:
    try:
        jwt.decode(statement, key, algorithms=algorithms)
    except (JoseError, ValueError, TypeError):
        return False
    return True


def _check_claims(claims: dict) -> None:
    """``iat`` required, ``exp`` and ``nbf`` if present, ``aud`` if present naming this server
    (``jwt_claims``), and a ``software_id``."""
    try:
        jwt_claims.check(claims, iat={"essential": True}, aud={"values": [current_app.config["ISSUER"]]})
    except ExpiredTokenError:
        raise InvalidSoftwareStatementError("software_statement has expired") from None
    except ClaimError as exc:
        raise InvalidSoftwareStatementError(CLAIM_REFUSALS.get(
            exc.claim, f"software_statement {exc.claim} claim is malformed (RFC 7519 section 4.1)")) from None
    if not isinstance(claims.get("software_id"), str) or not claims["software_id"]:
        raise InvalidSoftwareStatementError("software_statement must carry a software_id")
