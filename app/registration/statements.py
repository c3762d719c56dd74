"""Software statements (RFC 7591 §2.3): a JWT in which a trusted publisher vouches
for the metadata of its software.

Verified with the keys of the publisher named by ``iss`` only, with that
publisher's asymmetric algorithms only. A key the statement names itself
(``jwk``, ``jku``, ``x5u``, ``x5c`` headers) is never used: it would let anyone
vouch for themselves. Authlib's RFC 7591 endpoint only checks the signature;
the claim checks here (``iss`` known, ``iat``/``exp``/``nbf`` sane, ``aud`` if
present names us, ``software_id`` present) are ours.
"""
from __future__ import annotations

import json
import logging

from flask import current_app
from joserfc import jws, jwt
from joserfc.errors import JoseError

from .. import clock, fetch
from ..extensions import db
from ..models import Publisher
from . import publishers
from .errors import InvalidSoftwareStatementError, UnapprovedSoftwareStatementError
from .keys import ASYMMETRIC_ALGS, KeySetError

log = logging.getLogger(__name__)

MAX_LENGTH = 16 * 1024
LEEWAY = 60  # seconds of clock skew tolerated on iat / nbf
# JWT claims that describe the statement itself, not the client (RFC 7519 §4.1).
RESERVED = {"iss", "sub", "aud", "iat", "exp", "nbf", "jti"}


def verify(statement) -> tuple[Publisher, dict]:
    """Returns (publisher, client metadata claims) or raises an RFC 7591 §3.2.2 error."""
    if not isinstance(statement, str) or len(statement) > MAX_LENGTH or statement.count(".") != 2:
        raise InvalidSoftwareStatementError(f"software_statement must be a signed JWT (compact JWS) "
                                            f"of at most {MAX_LENGTH} characters")
    try:
        unverified = jws.extract_compact(statement.encode())
        header = unverified.headers()
        claims = json.loads(unverified.payload)
    except (JoseError, ValueError, TypeError):
        raise InvalidSoftwareStatementError("software_statement is not a well-formed JWT") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise InvalidSoftwareStatementError("software_statement has no iss claim")
    publisher = publishers.get(claims["iss"])
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
        key_set = publishers.key_set(publisher)
    except (fetch.FetchError, KeySetError) as exc:
        log.warning("keys of publisher %r unavailable: %s", publisher.issuer, exc)
        raise InvalidSoftwareStatementError("the publisher's keys could not be obtained; try again later") from None
    # With a kid, only that key; without one, any of the publisher's keys of the right type.
    candidates = [k for k in key_set if k.kid == header["kid"]] if header.get("kid") else list(key_set)
    if not any(_verifies(statement, key, algorithms) for key in candidates):
        raise InvalidSoftwareStatementError("software_statement signature does not verify with the keys "
                                            "of its publisher")
    _check_claims(claims)
    return publisher, {k: v for k, v in claims.items() if k not in RESERVED}


def _verifies(statement: str, key, algorithms: list[str]) -> bool:
    try:
        jwt.decode(statement, key, algorithms=algorithms)
    except (JoseError, ValueError, TypeError):
        return False
    return True


def _check_claims(claims: dict) -> None:
    now = clock.timestamp()
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise InvalidSoftwareStatementError("software_statement must have a numeric iat claim")
    if iat > now + LEEWAY:
        raise InvalidSoftwareStatementError("software_statement iat is in the future")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= now):
        raise InvalidSoftwareStatementError("software_statement has expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, (int, float)) or nbf > now + LEEWAY):
        raise InvalidSoftwareStatementError("software_statement is not valid yet (nbf)")
    aud = claims.get("aud")
    if aud is not None:
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or current_app.config["ISSUER"] not in audiences:
            raise InvalidSoftwareStatementError("software_statement aud does not name this server")
    if not isinstance(claims.get("software_id"), str) or not claims["software_id"]:
        raise InvalidSoftwareStatementError("software_statement must carry a software_id")
