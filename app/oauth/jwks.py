"""Key sets that others registered with us: inline ``jwks``, or ``jwks_uri`` fetched safely."""
from __future__ import annotations

import logging

from joserfc.jwk import KeySet

from .. import fetch
from ..registration.keys import KeySetError, resolve_jwks

log = logging.getLogger(__name__)


def registered_keys(jwks: dict | None, jwks_uri: str | None) -> KeySet | None:
    """The public keys, checked as at registration (asymmetric, public, sound), or None.

    ``jwks_uri`` goes through ``app.fetch`` (SSRF guards, size and time limits, a cache)."""
    if not jwks and not jwks_uri:
        return None
    try:
        return resolve_jwks(jwks or None, jwks_uri)
    except (KeySetError, fetch.FetchError) as exc:
        log.warning("registered keys at %r unusable: %s", jwks_uri or "inline jwks", exc)
    return None
