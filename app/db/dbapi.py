"""The inline requests' statements, run on a pooled driver (DBAPI) connection.

Each issuance is one client read and a share of one group-committed write
(``app.oauth.group_commit``); introspection and token exchange also read the presented
token. Through SQLAlchemy's execution machinery (execution contexts, events, result
objects) each statement costs more than the query itself (docs/performance.md).
Statements are still SQLAlchemy Core, compiled once per dialect, and values pass through
the column types' own bind and result processors, so what is written and read here is
exactly what the ORM writes and reads.
"""
from __future__ import annotations

import contextlib
import os
import time
import weakref
from dataclasses import dataclass

from sqlalchemy.sql import ClauseElement, Insert

from app.extensions import db
from app.support import inline


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple  # bind names in order; empty for named (pyformat) drivers
    binds: dict  # bind name -> bind processor (or None)
    literals: dict  # bind name -> the value the statement itself gives it (WHERE id = 1)
    results: tuple  # per result column: result processor (or None)

    def params(self, values: dict):
        values = {**self.literals, **values} if self.literals else values
        processed = {name: values.get(name) for name in self.names or self.binds}
        for name, processor in self.binds.items():
            if processor is not None:
                processed[name] = processor(processed[name])
        return tuple(processed[name] for name in self.names) if self.names else processed

    def row(self, raw):
        return tuple(_process(proc, value) for proc, value in zip(self.results, raw))


def _process(processor, value):
    return value if processor is None else processor(value)


_compiled: dict = {}


def _compile(statement: ClauseElement, dialect, columns: tuple | None = None) -> _Compiled:
    """``columns``: an INSERT's, when the rows give only some (a column the database fills,
    such as ``audit_event.id``, must not be sent as NULL)."""
    key = (id(statement), dialect.name, columns)
    found = _compiled.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
        binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                 for name, bind in compiled.binds.items()}
        literals = {name: bind.effective_value for name, bind in compiled.binds.items()
                    if bind.effective_value is not None}
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in getattr(statement, "exported_columns", ()))
        found = _compiled[key] = _Compiled(str(compiled), tuple(compiled.positiontup or ()),
                                           binds, literals, results)
    return found


class Rows:
    """What a statement gave back, as ``Result.first()``/``.all()`` would (processed rows)."""

    def __init__(self, rows: list):
        self._rows = rows

    def first(self):
        return self._rows[0] if self._rows else None

    def all(self) -> list:
        return self._rows


class Transaction:
    """A driver connection inside one transaction; ``execute`` takes Core statements and a dict
    (one row back, for ``.first()``) or a list of dicts (executemany)."""

    def __init__(self, connection, dialect):
        self.connection, self.dialect = connection, dialect

    def execute(self, statement: ClauseElement, params=None) -> Rows:
        columns = None
        if isinstance(statement, Insert) and isinstance(params, list) and params:
            columns = tuple(params[0])  # the rows' own: the database fills the others
        compiled = _compile(statement, self.dialect, columns)
        cursor = self.connection.cursor()
        try:
            if isinstance(params, list):
                cursor.executemany(compiled.sql, [compiled.params(p) for p in params])
                return Rows([])
            cursor.execute(compiled.sql, compiled.params(params or {}))
            return Rows([compiled.row(raw) for raw in cursor.fetchall()] if compiled.results else [])
        finally:
            cursor.close()


def fetch_one(statement: ClauseElement, params: dict) -> tuple | None:
    """The first row of ``statement``, read in autocommit: one round trip, no lock held."""
    return _read(statement, params).first()


def fetch_all(statement: ClauseElement, params: dict) -> list[tuple]:
    """Every row of ``statement``, read as ``fetch_one`` reads."""
    return _read(statement, params).all()


def _read(statement: ClauseElement, params: dict) -> Rows:
    if inline.running():
        return _read_on_loop(statement, params)
    with _checked_out(autocommit=True) as (connection, dialect):
        return Transaction(connection, dialect).execute(statement, params)


def _read_on_loop(statement: ClauseElement, params: dict) -> Rows:
    engine = db.engine
    reader = _loop_readers.get(engine)
    if reader is None:
        reader = _loop_readers[engine] = _LoopReader()
        weakref.finalize(engine, reader.release)
    return reader.read(engine, statement, params)


_loop_readers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> _LoopReader
# Kept no longer than the pool keeps a connection unchecked: after this long unused it may have
# been dropped (the pool would ping it, app.__init__); after pool_recycle it goes back.
IDLE_SECONDS, RECYCLE_SECONDS = 10, 1800


class _LoopReader:
    """Inline requests (``app.support.inline``) run one at a time on the event loop's thread, and none
    waits in the middle of a read, so the loop keeps one connection for their reads instead of
    checking one out of the pool, resetting it and returning it for every request."""

    def __init__(self):
        self.pooled, self.switched, self.pid, self.since, self.used = None, False, None, 0.0, 0.0

    def read(self, engine, statement: ClauseElement, params: dict) -> Rows:
        now = time.monotonic()
        if self.pooled is not None:
            if self.pid != os.getpid():
                self.pooled = None  # the parent's, before a fork: not this process's to use or close
            elif now - self.used > IDLE_SECONDS:
                self.pooled.invalidate()  # unused for a while: a new connection, not a dropped one
                self.pooled = None
            elif now - self.since > RECYCLE_SECONDS:
                self.release()
        if self.pooled is None:
            self.pooled, self.switched = _check_out(engine, autocommit=True)
            self.pid, self.since = os.getpid(), now
        try:
            rows = Transaction(self.pooled.driver_connection, engine.dialect).execute(statement, params)
        except Exception:
            self.pooled.invalidate()  # a connection that failed a read is not trusted with the next
            self.pooled = None
            raise
        self.used = now
        return rows

    def release(self) -> None:
        if self.pooled is not None and self.pid == os.getpid():
            _hand_back(self.pooled, self.switched)
        self.pooled = None


@contextlib.contextmanager
def transaction():
    """A ``Transaction`` committed at the end of the block, rolled back if it raises.

    SQLite: ``BEGIN IMMEDIATE`` (the write lock first) in its turn, as every transaction there
    (``app.db.sqlite_writers``). PostgreSQL: psycopg's pipeline mode, so statements whose results
    are not read (and the COMMIT) leave together: a group's write is one round trip and its
    commit, not one round trip per statement."""
    sqlite = db.engine.dialect.name == "sqlite"
    with _checked_out(autocommit=False) as (connection, dialect):
        if sqlite:
            connection.begin_immediate()
        try:
            with contextlib.nullcontext() if sqlite else connection.pipeline():
                yield Transaction(connection, dialect)
                connection.commit()
        except BaseException:
            connection.rollback()
            raise


@contextlib.contextmanager
def _checked_out(*, autocommit: bool):
    engine = db.engine
    pooled, switched = _check_out(engine, autocommit=autocommit)
    try:
        yield pooled.driver_connection, engine.dialect
    finally:
        _hand_back(pooled, switched)


def _check_out(engine, *, autocommit: bool) -> tuple:
    """A pooled connection (the pool's checkout events, its idle ping, still apply), and whether
    it was switched to autocommit: PostgreSQL's are, if asked; SQLite's are in autocommit
    already (BEGIN is explicit, app.__init__)."""
    pooled = engine.raw_connection()
    switched = autocommit and engine.dialect.name == "postgresql"
    if switched:
        pooled.driver_connection.autocommit = True
    return pooled, switched


def _hand_back(pooled, switched: bool) -> None:
    """Back to the pool, as the pool handed it out."""
    if switched and pooled.is_valid:
        pooled.driver_connection.autocommit = False
    pooled.close()
