"""Ostiary: an OAuth 2.0 authorization server for AI agents and workloads.

``create_app`` builds the one Flask app that the development server, the test client and
production (``asgi.py``) serve; each area mounts itself with its ``init_app``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import OperationalError

from app import models, settings  # noqa: F401 (the models register their tables)
from app.db import engine
from app.extensions import csrf, db, limiter, migrate
from app.settings import StartupError
from app.support import hashing, untrusted_json

log = logging.getLogger(__name__)


class UntrustedJSONProvider(DefaultJSONProvider):
    """``request.get_json`` parses with ``app.support.untrusted_json`` (Flask-WTF reads a console form
    from a JSON body with it): a nested body is a 400, never a ``RecursionError``."""

    def loads(self, s, **kwargs):
        return untrusted_json.loads(s, max_bytes=int(self._app.config["MAX_BODY_BYTES"]), what="the body")


def create_app(overrides: dict | None = None, *, dev: bool = False, check: bool = True) -> Flask:
    """Build an app. ``dev`` may generate missing secrets into the instance folder
    (the development server only); ``check`` verifies the database and keys."""
    try:
        values = settings.load(overrides)
        if dev or not check:
            from app.support.devsecrets import fill_from_instance
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
        SQLALCHEMY_ENGINE_OPTIONS=engine.options(values["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=values["MAX_BODY_BYTES"],
    )
    hashing.init(values["KEY_ENCRYPTION_KEY"])
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    csrf.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        engine.configure(db.engine)

    from app.signing import KeyStore, crypto
    app.extensions["ostiary.aead"] = crypto.derive(values["KEY_ENCRYPTION_KEY"])
    app.extensions["ostiary.keys"] = KeyStore(app.extensions["ostiary.aead"], values["KEY_CACHE_SECONDS"])

    from app.http import errors, health
    errors.init_app(app)
    app.register_blueprint(health.bp)
    from app.registration.views import bp as registration_bp
    app.register_blueprint(registration_bp)
    from app import oauth
    oauth.init_app(app)
    from app import console
    console.init_app(app)
    from app import people
    people.init_app(app)

    from app.audit import sequencer
    sequencer.init_app(app)

    if check:
        with app.app_context():
            startup_checks(app)
    return app


def startup_checks(app: Flask) -> None:
    from app.db.schema import current_revision, head_revision
    from app.signing.crypto import WrongKeyEncryptionKey
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
    return str(Path(__file__).resolve().parent.parent / "migrations")
