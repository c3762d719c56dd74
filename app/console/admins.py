"""Console administrators: creation, password checks (argon2id), failed-login limits, and the
session generation that ends every console session of an administrator at once.

A console session names the administrator's ``session_generation`` (``app.console.auth``);
logging out, changing the password and disabling raise it, so every session made before,
whatever cookies of it are still around, is refused from then on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Admin, LoginFailure
from app.support import clock, passwords
from app.support.login_limits import FailedLogins, LoginThrottled

_failures = FailedLogins(LoginFailure)  # the administrators' own count (app.support.login_limits)
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = passwords.MIN_LENGTH
WRONG = passwords.WRONG


class AdminError(ValueError):
    pass


def create_admin(username: str, password: str, actor: str) -> Admin:
    if not USERNAME.match(username):
        raise AdminError("username must be 1-64 letters, digits or _ . @ -")
    _check_password(password)
    password_hash = passwords.hash_password(password)
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
    password_hash = passwords.hash_password(password)  # before the transaction: SQLite would hold its lock
    admin = _get(username)
    admin.password_hash = password_hash
    _end_sessions(admin)
    _failures.forget(username)  # guesses at the old password; and how an operator lets them back in
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


def log_in(username: str, password: str, address: str | None) -> SignedIn | None:
    """Who logged in if the password matches, else None; either way audited and committed
    (``admin.login`` / ``admin.login_failed``, with a ``LoginFailure`` row counted against the
    account and the address). Raises ``LoginThrottled`` (audited as ``admin.login_throttled``)
    without checking the password when either has too many failures in the window.

    Call it with no transaction of your own open: the password is checked between two
    transactions, so that none is held (on SQLite: the write lock) during the slow hash.
    """
    username, address = username[:64], address[:64] if address else None
    try:
        _failures.check(username, address)
    except LoginThrottled as exc:
        audit.record("admin.login_throttled", f"admin:{username}", decision="deny", reason=exc.reason)
        db.session.commit()
        raise

    admin, refusal = passwords.check_login(Admin, username, password)
    if admin is None:
        _failures.count(username, address)
        audit.record("admin.login_failed", f"admin:{username}", decision="deny",
                     reason="administrator is disabled" if refusal == passwords.DISABLED else refusal)
        db.session.commit()
        return None
    admin.last_login_at = clock.now()
    _failures.succeeded(username, address)
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
    if problem := passwords.problem(password):
        raise AdminError(problem)


def _end_sessions(admin: Admin) -> None:
    # An increment in SQL: two concurrent raises both count, neither is lost.
    admin.session_generation = Admin.session_generation + 1
