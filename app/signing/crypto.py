"""Private signing keys at rest: AES-256-GCM under a key derived from the KEK."""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class WrongKeyEncryptionKey(Exception):
    pass


def derive(key_encryption_key: str) -> AESGCM:
    """The operator's KEK is any high-entropy string; HKDF turns it into an AES key."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ostiary/v1",
               info=b"signing-key-encryption").derive(key_encryption_key.encode())
    return AESGCM(key)


def encrypt(aead: AESGCM, plaintext: bytes, kid: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, kid.encode())  # kid as AAD binds blob to row


def decrypt(aead: AESGCM, blob: bytes, kid: str) -> bytes:
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], kid.encode())
    except InvalidTag:
        raise WrongKeyEncryptionKey(kid) from None
