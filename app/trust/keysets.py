"""Public key sets that others register with Ostiary: clients (RFC 7591 §2 ``jwks`` or
``jwks_uri``), software publishers and workload issuers (RFC 7517).

Only public, asymmetric signing keys are accepted: a key set with private
members would leak the client's key to everyone who can read the registration
(Keycloak #51219), a symmetric key would let anyone holding the "public" key
forge assertions (Authlib CVE-2024-37568), and RSA under 2048 bits is
breakable.
"""
from __future__ import annotations

import base64
import logging

from joserfc.errors import JoseError
from joserfc.jwk import KeySet, import_key

from app.support import fetch

log = logging.getLogger(__name__)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
CURVES = {"EC": {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"},
          "OKP": {"Ed25519": "EdDSA", "Ed448": "EdDSA"}}
# Asymmetric JWS algorithms only: never `none`, never HMAC (RFC 8725 §3.1, §3.2).
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MIN_RSA_BITS = 2048
MAX_KEYS = 10
IMPORTED_SIZE = 1000  # key set documents remembered imported; past that the memo starts again empty
_imported: dict[int, tuple[dict, KeySet]] = {}  # id(document) -> (document, its keys)


class KeySetError(ValueError):
    """The key set is not acceptable; the message says why."""


def resolve_jwks(jwks: dict | None, jwks_uri: str | None) -> KeySet:
    """The key set registered inline, or fetched from ``jwks_uri`` through ``app.support.fetch``
    (SSRF guards, size and time limits, a cache), checked as at registration (asymmetric,
    public, sound). Raises ``KeySetError`` or ``fetch.FetchError``."""
    return _checked(jwks if jwks is not None else fetch.fetch_json(jwks_uri))


def registered_keys(jwks: dict | None, jwks_uri: str | None) -> KeySet | None:
    """``resolve_jwks``, or None (logged) when there are no keys or they cannot be used."""
    if not jwks and not jwks_uri:
        return None
    try:
        return resolve_jwks(jwks or None, jwks_uri)
    except (KeySetError, fetch.FetchError) as exc:
        log.warning("registered keys at %r unusable: %s", jwks_uri or "inline jwks", exc)
    return None


def _checked(document: dict) -> KeySet:
    """``check_jwks(document)``, once per document object: a cached client record
    (``app.oauth.clients``) and the fetch cache hand out the same object every time, and
    importing a key set would cost a ``private_key_jwt`` request on every call, a sizeable
    share of its assertion's check (docs/performance.md). The entry holds the document, so
    its id is not reused while it is kept."""
    entry = _imported.get(id(document))
    if entry is not None and entry[0] is document:
        return entry[1]
    keys = check_jwks(document)
    if len(_imported) >= IMPORTED_SIZE:
        _imported.clear()
    _imported[id(document)] = (document, keys)
    return keys


def check_jwks(jwks) -> KeySet:
    """Validate a JWK Set document; returns it imported."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise KeySetError("jwks must be a JWK Set: an object with a non-empty 'keys' array")
    if len(jwks["keys"]) > MAX_KEYS:
        raise KeySetError(f"jwks holds more than {MAX_KEYS} keys")
    keys, kids = [], set()
    for i, jwk in enumerate(jwks["keys"]):
        keys.append(_check_key(i, jwk))
        kid = jwk.get("kid")
        if kid is not None and kid in kids:
            raise KeySetError(f"jwks key {i}: kid {kid!r} is used twice")
        kids.add(kid)
    return KeySet(keys)


def algorithms_for(jwks: dict) -> list[str]:
    """The signature algorithms a key set can verify (for a publisher added without --alg)."""
    algs: list[str] = []
    for jwk in jwks["keys"]:
        if jwk.get("alg") in ASYMMETRIC_ALGS:
            found = [jwk["alg"]]
        elif jwk["kty"] == "RSA":
            found = ["RS256", "PS256"]
        else:
            found = [CURVES[jwk["kty"]][jwk["crv"]]]
        algs += [a for a in found if a not in algs]
    return algs


def _check_key(i: int, jwk):
    if not isinstance(jwk, dict):
        raise KeySetError(f"jwks key {i} is not an object")
    kty = jwk.get("kty")
    if kty == "oct":
        raise KeySetError(f"jwks key {i} is a symmetric (oct) key; only public asymmetric keys are accepted")
    if private := sorted(PRIVATE_MEMBERS & jwk.keys()):
        raise KeySetError(f"jwks key {i} contains private key members ({', '.join(private)}); "
                          "register the public key only")
    if kty not in ("RSA", "EC", "OKP"):
        raise KeySetError(f"jwks key {i}: unsupported kty {kty!r} (RSA, EC or OKP)")
    if kty in CURVES and jwk.get("crv") not in CURVES[kty]:
        raise KeySetError(f"jwks key {i}: unsupported curve {jwk.get('crv')!r}")
    if jwk.get("use", "sig") != "sig":
        raise KeySetError(f"jwks key {i}: use must be 'sig'")
    if "alg" in jwk and jwk["alg"] not in ASYMMETRIC_ALGS:
        raise KeySetError(f"jwks key {i}: alg {jwk['alg']!r} is not an allowed asymmetric signature algorithm")
    if kty == "RSA" and _modulus_bits(jwk.get("n")) < MIN_RSA_BITS:
        # checked before import: joserfc would warn about (and accept) a short key
        raise KeySetError(f"jwks key {i}: RSA keys must be at least {MIN_RSA_BITS} bits")
    try:
        key = import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise KeySetError(f"jwks key {i} is not a valid {kty} key ({type(exc).__name__})") from None
    if key.is_private:
        raise KeySetError(f"jwks key {i} is a private key; register the public key only")
    return key


def _modulus_bits(n) -> int:
    if not isinstance(n, str) or len(n) > 2048:
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))).bit_length()
    except ValueError:
        return 0
