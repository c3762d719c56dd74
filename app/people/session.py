"""A person's session: who is signed in on the people's pages, apart from the console's login.

Its cookie (``ostiary_person``, realm ``REALM`` of ``app.http.sessions``) is opened on the
people's paths alone: ``/signin``, ``/signout``, ``/authorize`` and ``/my/…``. It names the
person's ``public_id``, their session generation (``app.people.accounts``: signing out, a new
password and disabling raise it) and when they signed in: it ends ``PERSON_SESSION_MINUTES``
after that, by the one clock, whatever the person does meanwhile.

For a view on one of those paths::

    person = current_person()          # the signed-in Person, or None
    person = require_person()          # or a 303 to the sign-in page, coming back here after
    return redirect(sign_in_url(request.full_path))
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select

from app.extensions import db
from app.http import sessions
from app.models import Person
from app.people import accounts
from app.support import clock

COOKIE = "ostiary_person"
PATHS = ("/signin", "/signout", "/authorize", "/my")
KEY = "person"
MAX_NEXT = 4096  # gunicorn's request line is shorter: a longer one never came from this server
_UNSET = object()


def realm(minutes: int) -> sessions.Realm:
    return sessions.Realm(cookie=COOKIE, salt="ostiary-person", prefixes=PATHS, lifetime=timedelta(minutes=minutes))


def current_person() -> Person | None:
    """The signed-in person, if their session is still theirs: not disabled, not signed out, no
    new password since, and within ``PERSON_SESSION_MINUTES`` of the sign-in. None elsewhere
    than on the people's paths (no session is open there)."""
    found = g.get("_ostiary_person", _UNSET)
    if found is _UNSET:
        found = g._ostiary_person = _load()
    return found


def sign_in(person: accounts.SignedIn | Person) -> None:
    """Begin a session for ``person`` (as ``accounts.authenticate`` returned them). Nothing of
    the session before survives it: a session fixed by someone else is not carried over."""
    _clear()
    session.permanent = True
    session[KEY] = {"sub": person.public_id, "generation": person.session_generation,
                    "at": int(clock.timestamp())}


def sign_out() -> None:
    """End the person's sessions, this one and every other (``accounts.sign_out``)."""
    person = current_person()
    if person is not None:
        accounts.sign_out(person.public_id)
    _clear()


def require_person() -> Person:
    """The signed-in person; else the view ends here with a 303 to the sign-in page, which
    comes back to this page (path and query) afterwards if it was a GET (a form posted without
    a session is not posted again: the sign-in goes to ``/my/``)."""
    person = current_person()
    if person is None:
        abort(redirect(sign_in_url(request.full_path if request.method == "GET" else None), 303))
    return person


def sign_in_url(next_path: str | None = None) -> str:
    """``/signin``, with ``next`` if it is a local path (``safe_next``); dropped otherwise."""
    target = safe_next(next_path)
    return url_for("people.signin", next=target) if target else url_for("people.signin")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this server, else None: never an open redirect. Refused: a
    scheme or host (``https://…``, ``//host``), a backslash (``/\\host``, read as ``//host``
    by browsers), and any whitespace or control character (``/\\t/host``: browsers drop them, and
    would then read ``//host``)."""
    if not target or len(target) > MAX_NEXT:
        return None
    target = target.removesuffix("?")  # request.full_path's, when there is no query
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(c.isspace() or not c.isprintable() for c in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        return None
    return target


def _load() -> Person | None:
    data = session.get(KEY)
    if data is None:
        return None
    if not (isinstance(data, dict) and isinstance(data.get("sub"), str)
            and type(data.get("generation")) is int and type(data.get("at")) is int):
        _clear()  # not a session this version made
        return None
    age = clock.timestamp() - data["at"]
    # (A minute of grace the other way, for instances whose clocks differ a little.)
    if not -60 <= age < current_app.config["PERSON_SESSION_MINUTES"] * 60:
        _clear()
        return None
    person = db.session.execute(select(Person).where(Person.public_id == data["sub"])).scalar_one_or_none()
    if not accounts.session_is_current(person, data["generation"]):
        _clear()
        return None
    return person


def _clear() -> None:
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF caches the token of the old session for this context
    g.pop("_ostiary_person", None)
