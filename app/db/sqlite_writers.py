"""SQLite's write transactions take turns, in the order they asked.

Every transaction on SQLite begins with ``BEGIN IMMEDIATE``: the write lock first
(``app.db.engine.configure``). SQLite's own wait for that lock is a sleep-and-retry loop (1, 2,
5, 10 … 100 ms), so under contention a waiter sleeps through the moments the lock is free and
later arrivals overtake it, and one unlucky waiter can wait for seconds (docs/performance.md).
Here a transaction queues for its turn before it asks SQLite: the threads of one process on
a lock, the processes on ``flock``, whose waiters the kernel wakes as soon as it is released.
The turn ends when the transaction does, however it ends: commit, rollback (SQLAlchemy's, or
the pool's reset on return) or close (the pool's invalidation). SQLite's lock still does the
excluding; the queue only orders who asks for it.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref

TIMEOUT_SECONDS = 30  # as SQLite's busy timeout: then "database is locked", as SQLite answers


class WriterQueue:
    """The turns of one database file's writers. ``flock`` is held per open file, so it cannot
    order the threads of one process: they queue on the lock first."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._file = None

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=TIMEOUT_SECONDS):
            raise sqlite3.OperationalError(f"database is locked: no turn to write in {TIMEOUT_SECONDS} s")
        try:
            if self._file is None:
                self._file = open(self.path + ".writer-lock", "a+b")
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the lock's file (a turn in progress ends with it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def forked(self) -> None:
        """In a forked child: its own lock, and its own open file (the inherited one shares the
        parent's lock; closing this copy of it leaves the parent's lock as it is)."""
        self._lock = threading.Lock()
        self.close()


class QueuedConnection(sqlite3.Connection):
    """A connection (``sqlite3.connect(factory=…)``) that holds its turn from
    ``begin_immediate()`` until its transaction ends."""

    queue: WriterQueue | None = None  # set on connect; None for an in-memory database
    _turn = False

    def begin_immediate(self) -> None:
        # A connection that holds its turn is inside a transaction: SQLite will say so at once.
        taking = self.queue is not None and not self._turn
        if taking:
            self.queue.acquire()
            self._turn = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            if taking:
                self._end_turn()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_turn()

    def _end_turn(self) -> None:
        if self._turn:
            self._turn = False
            self.queue.release()


_queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> WriterQueue


def queue_for(engine) -> WriterQueue | None:
    """The engine's queue (one per engine and process), or None for an in-memory database."""
    path = engine.url.database
    if not path or path == ":memory:":
        return None
    queue = _queues.get(engine)
    if queue is None:
        queue = _queues[engine] = WriterQueue(path)
        weakref.finalize(engine, queue.close)
    return queue


def _after_fork_in_child() -> None:
    for queue in list(_queues.values()):
        queue.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
