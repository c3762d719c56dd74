"""Key sets that others registered with us: inline ``jwks``, or ``jwks_uri`` fetched safely."""
from __future__ import annotations

import logging

from joserfc.jwk import KeySet

from .. import fetch
from ..registration.keys import KeySetError, check_jwks

log = logging.getLogger(__name__)

IMPORTED_SIZE = 1000  # documents; past that the memo starts again empty
_imported: dict[int, tuple[dict, KeySet]] = {}  # id(document) -> (document, its keys)


def registered_keys(jwks: dict | None, jwks_uri: str | None) -> KeySet | None:
    """The public keys, checked as at registration (asymmetric, public, sound), or None.

    ``jwks_uri`` goes through ``app.fetch`` (SSRF guards, size and time limits, a cache)."""
    if not jwks and not jwks_uri:
        return None
    try:
        return _checked(jwks or fetch.fetch_json(jwks_uri))
    except (KeySetError, fetch.FetchError) as exc:
        log.warning("registered keys at %r unusable: %s", jwks_uri or "inline jwks", exc)
    return None


def _checked(document: dict) -> KeySet:
    """``check_jwks(document)``, once per document object: a cached client record
    (``app.oauth.clients``) and the fetch cache hand out the same object every time, and
    importing a key set cost a ``private_key_jwt`` request a third of what verifying its
    assertion costs. The entry holds the document, so its id is not reused while it is kept."""
    entry = _imported.get(id(document))
    if entry is not None and entry[0] is document:
        return entry[1]
    keys = check_jwks(document)
    if len(_imported) >= IMPORTED_SIZE:
        _imported.clear()
    _imported[id(document)] = (document, keys)
    return keys
