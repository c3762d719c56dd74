"""Human passwords, for administrators (``app.console.admins``) and people (``app.people.accounts``)
alike: the one argon2id hasher, the one length rule, and the one check of a username and password
against an account table.

Secrets that Ostiary generates are stored as keyed SHA-256 hashes (``app.support.hashing``); the
slow hash here is for passwords people choose, never for the token endpoint.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import current_app
from sqlalchemy import select

from app.extensions import db

MIN_LENGTH = 12
WRONG = "wrong username or password"
DISABLED = "disabled"


def hasher() -> PasswordHasher:
    """The one argon2id hasher, at the cost the settings give (PASSWORD_TIME_COST,
    PASSWORD_MEMORY_KIB; never below OWASP's floor, ``app.settings``). A hash keeps the cost it
    was made with, so a changed cost takes effect for each account at its next sign-in."""
    config = current_app.config
    return _hasher(int(config["PASSWORD_TIME_COST"]), int(config["PASSWORD_MEMORY_KIB"]))


@functools.cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Compared against when the username is unknown, at the same cost, so that timing does not
    reveal which names exist."""
    return hasher.hash("not a password")


def problem(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown account), a check of the same cost
    that never matches."""
    current = hasher()
    try:
        return current.verify(password_hash or _dummy_hash(current), password) and password_hash is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


@dataclass(frozen=True)
class _Seen:
    id: int
    password_hash: str | None
    disabled: bool


def check_login(model, username: str, password: str):
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
    if seen is None or not verify(seen.password_hash, password):
        return None, WRONG
    if seen.disabled:
        return None, DISABLED

    account = db.session.execute(select(model).where(model.id == seen.id).with_for_update()).scalar_one_or_none()
    if account is None or account.password_hash != seen.password_hash or account.disabled_at is not None:
        # Changed while the password was checked: it was checked against a credential that no
        # longer holds.
        db.session.rollback()
        return None, WRONG
    if hasher().check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account, None
