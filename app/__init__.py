"""Ostiary: an OAuth 2.0 authorization server for AI agents and workloads."""
from __future__ import annotations

import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import OperationalError
from werkzeug.middleware.proxy_fix import ProxyFix

from . import database, hashing, models, settings  # noqa: F401 (models register their tables)
from . import untrusted_json
from .extensions import csrf, db, limiter, migrate

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Ostiary cannot start; the message is one line for the operator."""


class UntrustedJSONProvider(DefaultJSONProvider):
    """``request.get_json`` parses with ``app.untrusted_json`` (Flask-WTF reads a console form
    from a JSON body with it): a nested body is a 400, never a ``RecursionError``."""

    def loads(self, s, **kwargs):
        return untrusted_json.loads(s, max_bytes=int(self._app.config["MAX_BODY_BYTES"]), what="the body")


def create_app(overrides: dict | None = None, *, dev: bool = False, check: bool = True) -> Flask:
    """Build an app. ``dev`` may generate missing secrets into the instance folder
    (the development server only); ``check`` verifies the database and keys."""
    try:
        values = settings.load(overrides)
        if dev or not check:
            from .devsecrets import fill_from_instance
            fill_from_instance(values, generate=dev)
        settings.require_secrets(values)
    except settings.SettingsError as exc:
        raise StartupError(str(exc)) from None

    app = Flask(__name__, instance_path=values["INSTANCE_PATH"], template_folder="../templates",
                static_folder="../static")
    app.json = UntrustedJSONProvider(app)
    app.config.update(values)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=values["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(values["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=values["MAX_BODY_BYTES"],
        JSON_SORT_KEYS=False,
    )
    hashing.init(values["KEY_ENCRYPTION_KEY"])
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    csrf.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        database.configure(db.engine)

    from .keys import KeyStore, crypto
    app.extensions["ostiary.aead"] = crypto.derive(values["KEY_ENCRYPTION_KEY"])
    app.extensions["ostiary.keys"] = KeyStore(app.extensions["ostiary.aead"], values["KEY_CACHE_SECONDS"])

    from . import errors, wellknown
    errors.init_app(app)
    app.register_blueprint(wellknown.bp)
    from .registration.views import bp as registration_bp
    app.register_blueprint(registration_bp)
    from . import oauth
    oauth.init_app(app)
    from . import console
    console.init_app(app)

    from .audit import sequencer
    sequencer.init_app(app)
    if values["PROXY_HOPS"]:
        # Behind N reverse proxies, the client's address and scheme are the last N
        # X-Forwarded-For/-Proto entries: rate limits, pending caps and the audit trail see the
        # client, not the proxy.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=values["PROXY_HOPS"], x_proto=values["PROXY_HOPS"])

    from .cli import register_commands
    register_commands(app)

    if check:
        with app.app_context():
            startup_checks(app)
    return app


def startup_checks(app: Flask) -> None:
    from .keys.crypto import WrongKeyEncryptionKey
    from .migrations_state import current_revision, head_revision
    url = db.engine.url.render_as_string(hide_password=True)
    try:
        revision = current_revision()
    except OperationalError as exc:
        raise StartupError(f"cannot reach the database at {url}: {exc.orig}".splitlines()[0]) from None
    if revision != head_revision():
        raise StartupError(f"the database at {url} is not at the current schema "
                           f"(at {revision or 'nothing'}): run `ostiary init`")
    try:
        app.extensions["ostiary.keys"].check_decrypts()
    except WrongKeyEncryptionKey:
        raise StartupError("OSTIARY_KEY_ENCRYPTION_KEY does not decrypt the stored signing keys "
                           "(wrong key-encryption key?)") from None
    except LookupError as exc:
        raise StartupError(str(exc)) from None
    finally:
        db.session.remove()


def _migrations_dir() -> str:
    from pathlib import Path
    return str(Path(__file__).resolve().parent.parent / "migrations")
