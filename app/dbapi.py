"""Single statements on the token endpoint's hot path, run on a pooled driver (DBAPI)
connection in autocommit: one round trip, and none of SQLAlchemy's per-execution work
(execution context, events, result objects), which cost more than the query itself.

Statements are still written with SQLAlchemy Core and compiled once per dialect; values
come back as the driver gives them (callers convert what they read).
"""
from __future__ import annotations

from sqlalchemy.sql import ClauseElement

from .extensions import db

_compiled: dict = {}


def fetch_one(statement: ClauseElement, params: dict) -> tuple | None:
    """The first row of ``statement`` with ``params``, outside any transaction."""
    engine = db.engine
    sql, positional = _compile(statement, engine.dialect)
    connection = engine.raw_connection()  # the pool's checkout events (idle ping) still apply
    driver = connection.driver_connection
    autocommit = engine.dialect.name == "postgresql"  # SQLite's driver is in autocommit already
    try:
        if autocommit:
            driver.autocommit = True  # no BEGIN/ROLLBACK around the read
        cursor = connection.cursor()
        try:
            cursor.execute(sql, tuple(params[name] for name in positional) if positional else params)
            return cursor.fetchone()
        finally:
            cursor.close()
    finally:
        if autocommit:
            driver.autocommit = False  # as the pool handed it out
        connection.close()


def _compile(statement, dialect) -> tuple[str, tuple | None]:
    key = (id(statement), dialect.name)
    found = _compiled.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        found = _compiled[key] = (str(compiled), tuple(compiled.positiontup) if compiled.positional else None)
    return found
