"""Human passwords, for administrators (``app.console.admins``) and people (``app.people.accounts``)
alike: the one argon2id hasher, the one length rule, and the one check of a username and password
against an account table.

Secrets that Ostiary generates are stored as keyed SHA-256 hashes (``app.support.hashing``); the
slow hash here is for passwords people choose, never for the token endpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select

from app.extensions import db

HASHER = PasswordHasher()
# Compared against when the username is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = HASHER.hash("not a password")
MIN_LENGTH = 12
WRONG = "wrong username or password"
DISABLED = "disabled"


def problem(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    return None


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    return hasher.hash(password)


def verify(password_hash: str | None, password: str, hasher: PasswordHasher = HASHER) -> bool:
    """Whether ``password`` matches; with no hash (an unknown account), a check of the same cost
    that never matches."""
    try:
        return hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


@dataclass(frozen=True)
class _Seen:
    id: int
    password_hash: str | None
    disabled: bool


def check_login(model, username: str, password: str, hasher: PasswordHasher = HASHER):
    """``(account, None)``: the row of ``model`` named ``username`` whose password matches, read
    again and locked for update in a new transaction (its hash upgraded if argon2's parameters
    changed), for the caller to finish and commit; or ``(None, reason)``, ``WRONG`` or
    ``DISABLED``, with no transaction open.

    ``model`` has ``id``, ``username``, ``password_hash`` and ``disabled_at``. The password is
    checked between two transactions, so that none is held (on SQLite: the write lock) during
    the slow hash: call it with no transaction of your own open.
    """
    account = db.session.execute(select(model).where(model.username == username)).scalar_one_or_none()
    seen = _Seen(account.id, account.password_hash, account.disabled_at is not None) if account else None
    db.session.rollback()  # only read: end the transaction before the slow hash

    # A disabled account's password is checked all the same: the answer and its timing are
    # those of a wrong password.
    if seen is None or not verify(seen.password_hash, password, hasher):
        return None, WRONG
    if seen.disabled:
        return None, DISABLED

    account = db.session.execute(select(model).where(model.id == seen.id).with_for_update()).scalar_one_or_none()
    if account is None or account.password_hash != seen.password_hash or account.disabled_at is not None:
        # Changed while the password was checked: it was checked against a credential that no
        # longer holds.
        db.session.rollback()
        return None, WRONG
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hasher.hash(password)
    return account, None
