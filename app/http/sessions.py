"""Browser sessions, one signed cookie per realm: each path prefix that needs a session names
its realm (``mount``), with a cookie and a signing salt of its own. The administrators' console
(``/console``) and the people's pages (``/signin``, ``/authorize``, ``/my/…``) are two realms, so
an administrator signed in to the console has no person session and a person has no console
login: a request opens only its own realm's cookie, and a cookie of one realm, even renamed to
the other's, does not verify under the other's salt.

Everywhere else the session is Flask's null session, never opened and never saved: opening one
(a signing serializer, the cookie's signature check) on every token request was CPU spent for
nothing.

Every realm's cookie is HttpOnly, SameSite=Lax, and Secure when the issuer is https.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer


@dataclass(frozen=True)
class Realm:
    cookie: str
    salt: str
    lifetime: timedelta  # of a permanent session without a request (the cookie's max age)
    prefixes: tuple[str, ...]

    def covers(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)


class RealmSession(SecureCookieSession):
    realm: Realm | None = None


class RealmSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the cookie name, salt and lifetime of the realm the
    request's path is in."""

    session_class = RealmSession

    def __init__(self):
        self.realms: list[Realm] = []

    def add(self, realm: Realm) -> None:
        for other in self.realms:
            if other.cookie == realm.cookie or other.salt == realm.salt:
                raise ValueError(f"session realms {other.cookie!r} and {realm.cookie!r} must not share "
                                 f"a cookie name or a salt")
            if any(other.covers(prefix) or realm.covers(mine) for prefix in realm.prefixes
                   for mine in other.prefixes):
                raise ValueError(f"session realms {other.cookie!r} and {realm.cookie!r} overlap")
        self.realms.append(realm)

    def realm_of(self, path: str) -> Realm | None:
        return next((realm for realm in self.realms if realm.covers(path)), None)

    def open_session(self, app: Flask, request) -> RealmSession | None:
        realm = self.realm_of(request.path)
        if realm is None:
            return self.make_null_session(app)
        serializer = self._serializer(app, realm)
        if serializer is None:
            return None
        session = self.session_class()
        value = request.cookies.get(realm.cookie)
        if value:
            try:
                session = self.session_class(serializer.loads(value, max_age=int(realm.lifetime.total_seconds())))
            except BadSignature:
                pass
        session.realm = realm
        return session

    def save_session(self, app: Flask, session, response) -> None:
        realm = session.realm
        secure, path, domain = self.get_cookie_secure(app), self.get_cookie_path(app), self.get_cookie_domain(app)
        if session.accessed:
            response.vary.add("Cookie")
        if not session:
            if session.modified:
                response.delete_cookie(realm.cookie, domain=domain, path=path, secure=secure,
                                       samesite="Lax", httponly=True)
                response.vary.add("Cookie")
            return
        if not self.should_set_cookie(app, session):
            return
        expires = datetime.now(timezone.utc) + realm.lifetime if session.permanent else None
        response.set_cookie(realm.cookie, self._serializer(app, realm).dumps(dict(session)), expires=expires,
                            httponly=True, domain=domain, path=path, secure=secure, samesite="Lax")
        response.vary.add("Cookie")

    def get_cookie_secure(self, app: Flask) -> bool:
        return app.config["ISSUER"].startswith("https://")

    def get_signing_serializer(self, app: Flask):
        raise TypeError("a realm's session signs with the realm's salt (_serializer)")

    def _serializer(self, app: Flask, realm: Realm) -> URLSafeTimedSerializer | None:
        """The base class's serializer, with the realm's salt (the interface is shared by every
        thread: nothing of a request's realm is kept on it)."""
        if not app.secret_key:
            return None
        keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key]  # the current key last
        return URLSafeTimedSerializer(keys, salt=realm.salt, serializer=self.serializer,
                                      signer_kwargs={"key_derivation": self.key_derivation,
                                                     "digest_method": self.digest_method})


def mount(app: Flask, realm: Realm) -> None:
    """Give ``realm`` its cookie on its paths (the app's one ``RealmSessionInterface``, made by
    the first area that mounts one)."""
    if not isinstance(app.session_interface, RealmSessionInterface):
        app.session_interface = RealmSessionInterface()
    app.session_interface.add(realm)
