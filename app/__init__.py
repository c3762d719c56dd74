"""Ostiary: an OAuth 2.0 authorization server for AI agents and workloads."""
from __future__ import annotations

import logging
import time

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, OperationalError

from . import hashing, models, settings, sqlite_writers  # noqa: F401 (models register their tables)
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
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(values["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=values["MAX_BODY_BYTES"],
        JSON_SORT_KEYS=False,
    )
    hashing.init(values["KEY_ENCRYPTION_KEY"])
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    csrf.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        _configure_engine(db.engine)

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


# A pooled PostgreSQL connection idle longer than this is pinged before use (_ping_if_idle).
IDLE_PING_SECONDS = 10


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": sqlite_writers.TIMEOUT_SECONDS, "check_same_thread": False,
                                 "factory": sqlite_writers.QueuedConnection}}
    # Not pool_pre_ping: a round trip before every request (11 % of a token request's samples).
    # A connection is pinged only after sitting idle in the pool (_ping_if_idle), which is when
    # a database restart or a dropped idle connection goes unnoticed, and none lives longer than
    # pool_recycle (server- or proxy-side connection limits). The trade-off: a connection that
    # breaks while in constant use (the database restarted under load) fails its next request
    # once (500 server_error, nothing written), as in-flight requests do with pre-ping too;
    # SQLAlchemy then invalidates the whole pool, so the requests after it reconnect.
    return {"pool_recycle": 1800, "pool_size": 10, "max_overflow": 10}


def _configure_engine(engine) -> None:
    if engine.dialect.name != "sqlite":
        _ping_if_idle(engine)
        return

    # SQLite: WAL for concurrent readers, and every transaction BEGIN IMMEDIATE so
    # that a read-then-write transaction never fails to upgrade its lock (SQLite
    # would answer SQLITE_BUSY at once instead of waiting). This serialises
    # writers, which SQLite does anyway, and keeps the audit chain linear; they
    # take turns in the order they asked (app.sqlite_writers).
    queue = sqlite_writers.queue_for(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.queue = queue
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={sqlite_writers.TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.connection.driver_connection.begin_immediate()


def _ping_if_idle(engine) -> None:
    """Pessimistic disconnect handling for connections that sat idle: a failed ping raises
    DisconnectionError, on which the pool replaces the connection and retries the checkout."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            log.warning("a pooled database connection is gone (%r); reconnecting", exc)
            raise DisconnectionError() from exc
