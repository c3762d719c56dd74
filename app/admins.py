"""Console administrators: creation and password checks (argon2id)."""
from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select

from . import audit, clock
from .extensions import db
from .models import Admin

_hasher = PasswordHasher()
# Compared against when the username is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not a password")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 12


class AdminError(ValueError):
    pass


def create_admin(username: str, password: str, actor: str) -> Admin:
    if not USERNAME.match(username):
        raise AdminError("username must be 1-64 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"password must be at least {MIN_PASSWORD} characters")
    if db.session.execute(select(Admin).where(Admin.username == username)).first():
        raise AdminError(f"admin {username!r} already exists")
    admin = Admin(username=username, password_hash=_hasher.hash(password), created_at=clock.now())
    db.session.add(admin)
    audit.record("admin.created", actor, data={"username": username})
    db.session.commit()
    return admin


def log_in(username: str, password: str) -> Admin | None:
    """The admin if the password matches, else None; either way audited and committed
    (``admin.login`` / ``admin.login_failed``), with the login time on success."""
    admin = db.session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()
    try:
        _hasher.verify(admin.password_hash if admin else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        admin = None
    if admin is None:
        audit.record("admin.login_failed", f"admin:{username[:64]}", decision="deny",
                     reason="wrong username or password")
        db.session.commit()
        return None
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.last_login_at = clock.now()
    audit.record("admin.login", f"admin:{admin.username}", decision="allow")
    db.session.commit()
    return admin


def log_out(username: str) -> None:
    audit.record("admin.logout", f"admin:{username}")
    db.session.commit()


def count() -> int:
    return db.session.query(Admin).count()
