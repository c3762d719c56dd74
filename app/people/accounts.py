"""People's accounts: creating, changing the password, disabling and enabling, listing, and
checking a sign-in. Each change is audited in its own transaction (``app.audit.record``).

People are not administrators: their own table (``app.models.Person``), their own sessions
(``app.people.session``) and their own count of failed sign-ins, with the console's rules
(``app.support.login_limits``, realm ``person``) and the console's argon2id hasher and password
rule (``app.support.passwords``).

A session of a person names their ``session_generation``; signing out, a new password and
disabling raise it, so every session made before, whatever cookies of it are still around, is
refused from then on.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import LoginFailure, Person
from app.models.person import LOCAL
from app.support import clock, passwords
from app.support.login_limits import FailedLogins, LoginThrottled

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# An address as people type it: something@domain, no spaces or controls (it is never sent mail here).
EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,255}$")
GROUP = re.compile(r"^[A-Za-z0-9_.:@/-]{1,64}$")
MAX_DISPLAY_NAME = 255
MAX_GROUPS = 50
DISABLED = "person is disabled"

_failures = FailedLogins(LoginFailure, realm="person")

__all__ = ["LoginThrottled", "PersonError", "SignedIn", "authenticate", "create", "disable", "enable",
           "list_people", "new_public_id", "person_actor", "session_is_current", "set_groups", "set_password",
           "sign_out"]


class PersonError(ValueError):
    pass


def person_actor(username: str) -> str:
    """The audit trail's actor for what a person does themselves: ``person:<username>`` (a
    person from the OpenID provider, who has no username: ``person:<sub>``)."""
    return f"person:{username}"


def create(username: str, password: str, actor: str, *, email: str | None = None,
           email_verified: bool = False, display_name: str | None = None,
           groups: list[str] | tuple[str, ...] = ()) -> Person:
    """A local person, who signs in with ``username`` and ``password``; their ``public_id`` (the
    ``sub`` of their tokens) is new and random."""
    if not USERNAME.match(username):
        raise PersonError("username must be 1-64 letters, digits or _ . @ -")
    email = email or None
    if email is not None and not EMAIL.match(email):
        raise PersonError(f"{email!r} is not an email address")
    if email is None and email_verified:
        raise PersonError("there is no email address to call verified")
    if display_name is not None and (len(display_name) > MAX_DISPLAY_NAME or not display_name.isprintable()):
        raise PersonError(f"the name must be at most {MAX_DISPLAY_NAME} printable characters")
    groups = _checked_groups(groups)
    _check_password(password)
    password_hash = passwords.hash_password(password)  # before the transaction: SQLite would hold its lock
    if db.session.execute(select(Person.id).where(Person.username == username)).first():
        raise PersonError(f"user {username!r} already exists")
    person = Person(public_id=new_public_id(), username=username, email=email, email_verified=email_verified,
                    display_name=display_name or None, source=LOCAL, password_hash=password_hash,
                    groups=groups, created_at=clock.now())
    db.session.add(person)
    audit.record("person.created", actor, data={"username": username, "sub": person.public_id,
                                                "groups": groups})
    db.session.commit()
    return person


def set_password(username: str, password: str, actor: str) -> None:
    """A new password; every session of the person ends with the old one, and the failed
    sign-ins counted against the account are forgotten (they were guesses at the old one)."""
    _check_password(password)
    password_hash = passwords.hash_password(password)
    person = _get(username)
    if person.source != LOCAL:
        raise PersonError(f"{username!r} signs in through the OpenID provider and has no password here")
    person.password_hash = password_hash
    _end_sessions(person)
    _failures.forget(username)
    audit.record("person.password_changed", actor, data={"username": username, "sub": person.public_id})
    db.session.commit()


def set_groups(username: str, groups: list[str] | tuple[str, ...], actor: str) -> list[str]:
    """A local person's groups, which the policy's ``[[people]]`` rules read, replaced by
    ``groups``; returns them as stored. (A person from the OpenID provider has the groups the
    provider says, brought up to date at each sign-in: set there, not here.)"""
    groups = _checked_groups(groups)
    person = _get(username)
    if person.source != LOCAL:
        raise PersonError(f"{username!r} signs in through the OpenID provider, which tells their groups "
                          "at each sign-in")
    before = list(person.groups or [])
    if before == groups:
        raise PersonError(f"user {username!r} already has exactly these groups")
    person.groups = groups
    audit.record("person.groups_changed", actor, data={"username": username, "sub": person.public_id,
                                                       "before": before, "groups": groups})
    db.session.commit()
    return groups


def disable(username: str, actor: str, reason: str) -> None:
    """The person can no longer sign in, and every session of theirs ends now. ``username`` may
    be the ``sub`` of a person from the OpenID provider, who has no username."""
    person = _get(username)
    if person.disabled_at is not None:
        raise PersonError(f"user {username!r} is already disabled")
    person.disabled_at = clock.now()
    _end_sessions(person)
    audit.record("person.disabled", actor, reason=reason, data={"username": username, "sub": person.public_id})
    db.session.commit()


def enable(username: str, actor: str) -> None:
    """Undo ``disable``: the person may sign in again (their old sessions stay ended)."""
    person = _get(username)
    if person.disabled_at is None:
        raise PersonError(f"user {username!r} is not disabled")
    person.disabled_at = None
    audit.record("person.enabled", actor, data={"username": username, "sub": person.public_id})
    db.session.commit()


def list_people() -> list[Person]:
    """Every person, local ones by username first. Reading changes nothing and is not audited."""
    return list(db.session.scalars(select(Person).order_by(Person.username.is_(None), Person.username,
                                                           Person.id)))


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, and the session generation their new session belongs to."""
    public_id: str
    username: str | None  # None: a person from the OpenID provider (app.people.oidc)
    session_generation: int


def authenticate(username: str, password: str, address: str | None) -> SignedIn | None:
    """Who signed in if the password matches, else None; either way audited and committed
    (``person.signed_in`` / ``person.sign_in_failed``, with a failure counted against the
    account and the address). Raises ``LoginThrottled`` (audited as ``person.sign_in_throttled``)
    without checking the password when either has too many failures in the window. A disabled
    person and an unknown username fail as a wrong password does, in what they are told and in
    time; the audit trail says which it was.

    Call it with no transaction of your own open: the password is checked between two
    transactions (``app.support.passwords.check_login``).
    """
    username, address = username[:64], address[:64] if address else None
    try:
        _failures.check(username, address)
    except LoginThrottled as exc:
        audit.record("person.sign_in_throttled", person_actor(username), decision="deny", reason=exc.reason)
        db.session.commit()
        raise

    person, refusal = passwords.check_login(Person, username, password)
    if person is None:
        _failures.count(username, address)
        audit.record("person.sign_in_failed", person_actor(username), decision="deny",
                     reason=DISABLED if refusal == passwords.DISABLED else refusal)
        db.session.commit()
        return None
    person.last_login_at = clock.now()
    _failures.succeeded(username, address)
    audit.record("person.signed_in", person_actor(person.username), decision="allow", data={"sub": person.public_id})
    # The generation as of this transaction: a sign-out committed after it ends this session too.
    signed_in = SignedIn(person.public_id, person.username, person.session_generation)
    db.session.commit()
    return signed_in


def sign_out(public_id: str) -> None:
    """End every session of this person, not only the one that signs out: the session generation
    is raised, and any cookie made before is refused from then on."""
    person = db.session.execute(select(Person).where(Person.public_id == public_id)).scalar_one_or_none()
    if person is None:
        return
    _end_sessions(person)
    audit.record("person.signed_out", person_actor(person.username or person.public_id), data={"sub": public_id})
    db.session.commit()


def session_is_current(person: Person | None, generation: int) -> bool:
    """Whether a session made at ``generation`` still belongs to a person who may act."""
    return person is not None and person.disabled_at is None and person.session_generation == generation


def new_public_id() -> str:
    """A new person's ``public_id``, the ``sub`` of their tokens."""
    # 144 random bits: never guessed, never met twice (and people are never deleted, so an id
    # in use stays in the unique column for good).
    return secrets.token_urlsafe(18)


def _get(username: str) -> Person:
    """The person with this username, or else with this ``sub`` (people from the OpenID provider
    have no username); ``PersonError`` if none."""
    person = db.session.execute(select(Person).where(Person.username == username)).scalar_one_or_none()
    if person is None:
        person = db.session.execute(select(Person).where(Person.public_id == username)).scalar_one_or_none()
    if person is None:
        raise PersonError(f"no user {username!r}")
    return person


def _checked_groups(groups) -> list[str]:
    groups = sorted(set(groups))
    if len(groups) > MAX_GROUPS or not all(GROUP.match(group) for group in groups):
        raise PersonError(f"at most {MAX_GROUPS} groups, each 1-64 letters, digits or _ . : @ / -")
    return groups


def _check_password(password: str) -> None:
    if problem := passwords.problem(password):
        raise PersonError(problem)


def _end_sessions(person: Person) -> None:
    # An increment in SQL: two concurrent raises both count, neither is lost.
    person.session_generation = Person.session_generation + 1
