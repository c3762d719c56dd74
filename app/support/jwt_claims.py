"""The registered claims of a JWT (RFC 7519 §4.1), checked one way for every JWT Ostiary
verifies: joserfc's claims registry, timed by the one clock (``app.support.clock``), with one
allowance for clock skew.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

from joserfc import jwt

from app.support import clock

# Seconds by which the signer's clock may differ from ours, on exp, nbf and iat (RFC 7519
# §4.1.4 allows "some small leeway"). Our own tokens get it too, from another instance's
# clock; their expiry is still exact, as their row decides it (``app.oauth.tokens``).
LEEWAY = 30


def check(claims: dict, **requested) -> None:
    """Raise joserfc's ``ClaimError`` unless ``claims`` are within their times and meet what is
    ``requested`` of them, in joserfc's claim options (``iss={"essential": True, "value": …}``).
    The claim at fault is the error's ``claim``; ``ExpiredTokenError`` says it is ``exp``."""
    jwt.JWTClaimsRegistry(now=lambda: int(clock.timestamp()), leeway=LEEWAY, **requested).validate(claims)


def kept_until(exp: float) -> datetime:
    """Until when a single-use JWT's ``jti`` must be remembered: past the last moment ``check``
    still accepts the JWT. ``check`` reads the time in whole seconds, so a JWT whose ``exp`` has
    a fraction is accepted up to the second after ``exp + LEEWAY``; the row outlives that second."""
    return datetime.fromtimestamp(math.ceil(exp) + LEEWAY + 1, tz=UTC)
