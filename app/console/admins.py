"""Console administrators: creation, password checks (argon2id), failed-login limits, and the
session generation that ends every console session of an administrator at once.

A console session names the administrator's ``session_generation`` (``app.console.auth``);
logging out, changing the password and disabling raise it, so every session made before,
whatever cookies of it are still around, is refused from then on.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import current_app
from sqlalchemy import delete, select

from app import audit
from app.extensions import db
from app.models import Admin, LoginFailure
from app.support import clock

_hasher = PasswordHasher()
# Compared against when the username is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not a password")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 12
WRONG = "wrong username or password"


class AdminError(ValueError):
    pass


class LoginThrottled(Exception):
    """Too many failed logins for the account or from the address within the window."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def create_admin(username: str, password: str, actor: str) -> Admin:
    if not USERNAME.match(username):
        raise AdminError("username must be 1-64 letters, digits or _ . @ -")
    _check_password(password)
    password_hash = _hasher.hash(password)
    if db.session.execute(select(Admin).where(Admin.username == username)).first():
        raise AdminError(f"admin {username!r} already exists")
    admin = Admin(username=username, password_hash=password_hash, created_at=clock.now())
    db.session.add(admin)
    audit.record("admin.created", actor, data={"username": username})
    db.session.commit()
    return admin


def set_password(username: str, password: str, actor: str) -> None:
    """A new password; every console session of the administrator ends with the old one."""
    _check_password(password)
    password_hash = _hasher.hash(password)  # before the transaction: SQLite would hold its lock
    admin = _get(username)
    admin.password_hash = password_hash
    _end_sessions(admin)
    # The failures counted so far were guesses at the old password; clearing them is also how an
    # operator lets an administrator back in who ran into the per-account limit.
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    audit.record("admin.password_changed", actor, data={"username": username})
    db.session.commit()


def disable(username: str, actor: str, reason: str) -> None:
    """The administrator can no longer log in, and every console session of theirs ends now."""
    admin = _get(username)
    if admin.disabled_at is not None:
        raise AdminError(f"admin {username!r} is already disabled")
    admin.disabled_at = clock.now()
    _end_sessions(admin)
    audit.record("admin.disabled", actor, reason=reason, data={"username": username})
    db.session.commit()


def enable(username: str, actor: str) -> None:
    """Undo ``disable``: the administrator may log in again (their old sessions stay ended)."""
    admin = _get(username)
    if admin.disabled_at is None:
        raise AdminError(f"admin {username!r} is not disabled")
    admin.disabled_at = None
    audit.record("admin.enabled", actor, data={"username": username})
    db.session.commit()


@dataclass(frozen=True)
class SignedIn:
    """Who logged in, and the session generation their new session belongs to."""
    id: int
    username: str
    session_generation: int


@dataclass(frozen=True)
class _Seen:
    id: int
    password_hash: str
    disabled: bool


def log_in(username: str, password: str, address: str | None) -> SignedIn | None:
    """Who logged in if the password matches, else None; either way audited and committed
    (``admin.login`` / ``admin.login_failed``, with a ``LoginFailure`` row counted against the
    account and the address). Raises ``LoginThrottled`` (audited as ``admin.login_throttled``)
    without checking the password when either has too many failures in the window.

    Call it with no transaction of your own open: the password is checked between two
    transactions, so that none is held (on SQLite: the write lock) during the slow hash.
    """
    username, address = username[:64], address[:64] if address else None
    config = current_app.config
    now = clock.now()
    since = now - timedelta(seconds=config["LOGIN_FAILURE_WINDOW"])
    # Concurrent attempts may each see the count just under a limit: it can be exceeded by the
    # attempts in flight at once, never more. Locking for the count would serialise every
    # login behind the slowest password check.
    for reason, column, value, limit in (
            ("too many failed logins for this account", LoginFailure.username, username,
             config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
            ("too many failed logins from this address", LoginFailure.address, address,
             config["LOGIN_MAX_FAILURES_PER_ADDRESS"])):
        retry_after = _retry_after(column, value, limit, since)
        if retry_after:
            audit.record("admin.login_throttled", f"admin:{username}", decision="deny", reason=reason)
            db.session.commit()
            raise LoginThrottled(reason, retry_after)

    admin = db.session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()
    seen = _Seen(admin.id, admin.password_hash, admin.disabled_at is not None) if admin else None
    db.session.rollback()  # only read: end the transaction before the slow hash

    # A disabled administrator's password is checked all the same: the answer and its timing
    # are those of a wrong password.
    matches = _verify(seen.password_hash if seen else _DUMMY_HASH, password)
    if seen is None or not matches:
        return _failed(username, address, now, since, WRONG)
    if seen.disabled:
        return _failed(username, address, now, since, "administrator is disabled")

    admin = db.session.execute(select(Admin).where(Admin.id == seen.id).with_for_update()).scalar_one_or_none()
    if admin is None or admin.password_hash != seen.password_hash or admin.disabled_at is not None:
        # Changed while the password was checked: it was checked against a credential that no
        # longer holds.
        return _failed(username, address, now, since, WRONG)
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.last_login_at = now
    # This account's failures from this address only: a success must not wipe out what other
    # addresses tried against the account.
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == username,
                                                  LoginFailure.address == address))
    audit.record("admin.login", f"admin:{admin.username}", decision="allow")
    # The generation as of this transaction: a logout committed after it ends this session too.
    signed_in = SignedIn(admin.id, admin.username, admin.session_generation)
    db.session.commit()
    return signed_in


def log_out(username: str) -> None:
    """End every console session of this administrator, not only the one that logs out: the
    session generation is raised, and any cookie made before is refused from then on."""
    admin = db.session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()
    if admin is not None:
        _end_sessions(admin)
    audit.record("admin.logout", f"admin:{username}")
    db.session.commit()


def session_is_current(admin: Admin | None, generation: int) -> bool:
    """Whether a console session made at ``generation`` still belongs to a usable administrator."""
    return admin is not None and admin.disabled_at is None and admin.session_generation == generation


def count() -> int:
    return db.session.query(Admin).count()


def _get(username: str) -> Admin:
    admin = db.session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()
    if admin is None:
        raise AdminError(f"no admin {username!r}")
    return admin


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"password must be at least {MIN_PASSWORD} characters")


def _end_sessions(admin: Admin) -> None:
    # An increment in SQL: two concurrent raises both count, neither is lost.
    admin.session_generation = Admin.session_generation + 1


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _retry_after(column, value, limit: int, since) -> int | None:
    """Seconds until fewer than ``limit`` failures of ``value`` are in the window (None: already)."""
    if value is None:
        return None
    # The limit-th most recent failure: once it leaves the window, the count is under the limit.
    at = db.session.execute(select(LoginFailure.at).where(column == value, LoginFailure.at > since)
                            .order_by(LoginFailure.at.desc()).offset(limit - 1).limit(1)).scalar()
    if at is None:
        return None
    return max(1, math.ceil((at - since).total_seconds()))


def _failed(username: str, address: str | None, now, since, reason: str) -> None:
    db.session.add(LoginFailure(username=username, address=address, at=now))
    db.session.execute(delete(LoginFailure).where(LoginFailure.at <= since))  # rows no window counts
    audit.record("admin.login_failed", f"admin:{username}", decision="deny", reason=reason)
    db.session.commit()
    return None
