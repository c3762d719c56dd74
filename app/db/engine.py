"""The database engine's settings: SQLite's write discipline, PostgreSQL's pool."""
from __future__ import annotations

import logging
import time

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

from app.db import sqlite_writers

log = logging.getLogger(__name__)

# A pooled PostgreSQL connection idle longer than this is pinged before use (_ping_if_idle).
IDLE_PING_SECONDS = 10


def options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": sqlite_writers.TIMEOUT_SECONDS, "check_same_thread": False,
                                 "factory": sqlite_writers.QueuedConnection}}
    # Not pool_pre_ping: a round trip before every request, on the token endpoint's budget
    # (docs/architecture.md, "The token endpoint's budget"; docs/performance.md).
    # A connection is pinged only after sitting idle in the pool (_ping_if_idle), which is when
    # a database restart or a dropped idle connection goes unnoticed, and none lives longer than
    # pool_recycle (server- or proxy-side connection limits). The trade-off: a connection that
    # breaks while in constant use (the database restarted under load) fails its next request
    # once (500 server_error, nothing written), as in-flight requests do with pre-ping too;
    # SQLAlchemy then invalidates the whole pool, so the requests after it reconnect.
    return {"pool_recycle": 1800, "pool_size": 10, "max_overflow": 10}


def configure(engine) -> None:
    if engine.dialect.name != "sqlite":
        _ping_if_idle(engine)
        return

    # SQLite: WAL for concurrent readers, and every transaction BEGIN IMMEDIATE so
    # that a read-then-write transaction never fails to upgrade its lock (SQLite
    # would answer SQLITE_BUSY at once instead of waiting). This serialises
    # writers, which SQLite does anyway, and keeps the audit chain linear; they
    # take turns in the order they asked (app.db.sqlite_writers).
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
