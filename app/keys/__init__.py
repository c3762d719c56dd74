"""Signing keys: generation, encryption at rest, rotation, JWKS."""
from .store import KeyStore, ensure_keys, rotate

__all__ = ["KeyStore", "ensure_keys", "rotate"]
