"""Secrets that Ostiary generates: 256 random bits, stored as a keyed SHA-256 hash.

A slow password hash would be wasted on 256-bit random secrets and would cap the token
endpoint at a few dozen requests a second (docs/architecture.md, "The token endpoint's
budget"); argon2 is for human passwords (``app.console.admins``).
"""
from __future__ import annotations

import hmac
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_key: bytes | None = None


def init(key_encryption_key: str) -> None:
    """Derive the hashing key; it comes from the KEK so rotating SECRET_KEY keeps secrets valid."""
    global _key
    _key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ostiary/v1",
                info=b"secret-hash").derive(key_encryption_key.encode())


def generate(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    if _key is None:
        raise RuntimeError("hashing.init() was not called")
    return hmac.digest(_key, secret.encode(), "sha256").hex()  # one call into OpenSSL


def verify(secret: str | None, stored_hash: str | None) -> bool:
    """Constant-time comparison; a missing secret or hash never matches."""
    if not secret or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
