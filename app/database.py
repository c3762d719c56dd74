"""The engine's configuration for SQLite and PostgreSQL, and reads outside any transaction.

Every ORM transaction on SQLite begins ``BEGIN IMMEDIATE`` (the write lock first), so that a
read-then-write transaction never fails to upgrade its lock: SQLite would answer SQLITE_BUSY at
once rather than wait. A request that only reads before it writes (a token request reads its
client, then writes its token) reads with ``read()``, in autocommit: under WAL a reader takes
no lock, and the write lock is held for the write alone.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

from . import sqlite_writers
from .extensions import db

log = logging.getLogger(__name__)

# A pooled PostgreSQL connection idle longer than this is pinged before use (_ping_if_idle).
IDLE_PING_SECONDS = 10
OUTSIDE_TRANSACTION = "ostiary_outside_transaction"  # execution option: no BEGIN on SQLite


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": sqlite_writers.TIMEOUT_SECONDS, "check_same_thread": False,
                                 "factory": sqlite_writers.QueuedConnection}}
    # Not pool_pre_ping: a round trip before every request. A connection is pinged only after
    # sitting idle in the pool (_ping_if_idle), which is when a database restart or a dropped
    # idle connection goes unnoticed, and none lives longer than pool_recycle (server- or
    # proxy-side connection limits). A connection that breaks while in constant use fails its
    # next request once (500 server_error, nothing written), as in-flight requests do with
    # pre-ping too; SQLAlchemy then invalidates the whole pool and the next requests reconnect.
    return {"pool_recycle": 1800, "pool_size": 10, "max_overflow": 10}


def configure(engine) -> None:
    if engine.dialect.name != "sqlite":
        _ping_if_idle(engine)
        return
    # WAL for concurrent readers; writers take turns in the order they asked (app.sqlite_writers).
    queue = sqlite_writers.queue_for(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # BEGIN is explicit (below)
        dbapi_connection.queue = queue
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={sqlite_writers.TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if not connection.get_execution_options().get(OUTSIDE_TRANSACTION):
            connection.connection.driver_connection.begin_immediate()


def read(statement, params: dict | None = None) -> list:
    """Every row of ``statement``, run in autocommit on a pooled connection: one round trip, no
    transaction and no lock (see the module's docstring). SQLite's connections are in the
    driver's autocommit already (``configure``): only the BEGIN is left out."""
    engine = db.engine
    options = ({OUTSIDE_TRANSACTION: True} if engine.dialect.name == "sqlite"
               else {"isolation_level": "AUTOCOMMIT"})
    with engine.connect().execution_options(**options) as connection:
        return connection.execute(statement, params or {}).all()


def read_one(statement, params: dict | None = None):
    """The first row of ``read(statement, params)``, or None."""
    rows = read(statement, params)
    return rows[0] if rows else None


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
