"""Ostiary's own signing keys: generated, encrypted at rest under the key-encryption key,
rotated (next → active → retiring → retired), published as the JWKS."""
from app.signing.store import KeyStore, ensure_keys, rotate

__all__ = ["KeyStore", "ensure_keys", "rotate"]
