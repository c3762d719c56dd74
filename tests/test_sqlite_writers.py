"""SQLite's writers take turns (app.db.sqlite_writers): queued in the process and between processes,
and every way a transaction ends gives the turn back."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

import pytest
from flask import current_app
from sqlalchemy import text

from app.db import sqlite_writers
from app.extensions import db

from .factories import sqlite_write_lock_is_free
from .waiting import flock_waiters, until

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def queue():
    return sqlite_writers.queue_for(db.engine)


def lock_file() -> str:
    return queue().path + ".writer-lock"


def turn_is_free() -> bool:
    """Neither a thread of this process nor another process (flock) holds a turn."""
    if queue()._lock.locked():
        return False
    with open(lock_file(), "a+b") as other:  # another open file: another process
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True


def in_thread(work) -> tuple[threading.Thread, threading.Event, list]:
    """Run ``work`` on a thread of its own (in its own app context); the event is set when it is done."""
    done, errors = threading.Event(), []
    app = current_app._get_current_object()

    def run():
        try:
            with app.app_context():
                work()
        except Exception as exc:  # reported to the test
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done, errors


def write_one_row():
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))


class WatchedLock:
    """A queue's thread lock, telling which threads are asking for it."""

    def __init__(self, lock):
        self._lock, self.asking = lock, set()

    def acquire(self, *args, **kwargs):
        self.asking.add(threading.get_ident())
        try:
            return self._lock.acquire(*args, **kwargs)
        finally:
            self.asking.discard(threading.get_ident())

    def release(self):
        self._lock.release()

    def locked(self):
        return self._lock.locked()


@pytest.mark.parametrize("end", ["commit", "rollback", "invalidation", "pool reset"])
def test_the_turn_is_held_from_begin_to_the_transactions_end_however_it_ends(app, end):
    db.session.remove()
    assert turn_is_free()
    pooled = db.engine.raw_connection()
    pooled.driver_connection.begin_immediate()
    assert not turn_is_free()
    if end == "commit":
        pooled.driver_connection.commit()
    elif end == "rollback":
        pooled.driver_connection.rollback()
    elif end == "invalidation":
        pooled.invalidate()  # the pool closes the driver connection
    pooled.close()  # back to the pool; "pool reset": with its transaction still open
    assert turn_is_free()


def test_a_begin_inside_a_transaction_is_sqlites_error_at_once_not_a_wait_for_its_own_turn(app):
    db.session.remove()
    pooled = db.engine.raw_connection()
    pooled.driver_connection.begin_immediate()
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        pooled.driver_connection.begin_immediate()
    assert not turn_is_free()  # still the first transaction's
    pooled.driver_connection.rollback()
    pooled.close()
    assert turn_is_free()


def test_the_orm_session_takes_its_turn_and_gives_it_back_on_commit(app):
    db.session.execute(text("SELECT 1"))
    assert not turn_is_free()
    db.session.commit()
    assert turn_is_free()


def test_a_writer_waits_for_another_process_turn_though_sqlite_is_free(app):
    """flock orders the processes: held from another open file, a writer waits for it even with
    SQLite's own write lock free, and goes as soon as it is released."""
    db.session.remove()
    with open(lock_file(), "a+b") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        thread, done, errors = in_thread(write_one_row)
        try:
            until(lambda: done.is_set() or os.getpid() in flock_waiters(lock_file()), "the writer to wait on flock")
            assert not done.is_set(), "wrote while another process held the turn"
            assert sqlite_write_lock_is_free(db.engine.url.database)  # SQLite's lock was free all along
        finally:
            fcntl.flock(other_process, fcntl.LOCK_UN)
        assert done.wait(10)
    thread.join()
    assert errors == []
    assert turn_is_free()


def test_threads_of_one_process_wait_for_the_turn_and_then_go(app, monkeypatch):
    db.session.remove()
    holder = db.engine.connect()
    holder.begin()
    holder.execute(text("SELECT 1"))
    lock = WatchedLock(queue()._lock)
    monkeypatch.setattr(queue(), "_lock", lock)
    assert lock.locked()  # the holder's turn
    thread, done, errors = in_thread(write_one_row)
    until(lambda: done.is_set() or thread.ident in lock.asking, "the writer to ask for the held turn")
    assert not done.is_set(), "wrote while another thread held the turn"
    holder.commit()
    holder.close()
    assert done.wait(10)
    thread.join()
    assert errors == []
    assert turn_is_free()


def test_no_turn_within_the_timeout_is_sqlites_own_error(app, monkeypatch):
    monkeypatch.setattr(sqlite_writers, "TIMEOUT_SECONDS", 0.2)
    db.session.remove()
    holder = db.engine.connect()
    holder.begin()
    holder.execute(text("SELECT 1"))
    thread, done, errors = in_thread(write_one_row)
    assert done.wait(10)
    thread.join()
    holder.rollback()
    holder.close()
    assert len(errors) == 1 and "database is locked" in str(errors[0])
    assert turn_is_free()


def test_a_forked_child_queues_behind_its_parent_with_a_lock_and_file_of_its_own(app, monkeypatch):
    """A child of a process that holds a turn (gunicorn forks its workers) must neither inherit
    the held thread lock (it would wait for it in vain) nor share the parent's open file (it
    would hold the parent's flock too)."""
    monkeypatch.setattr(sqlite_writers, "TIMEOUT_SECONDS", 2)
    db.session.remove()
    holder = db.engine.connect()
    holder.begin()
    holder.execute(text("SELECT 1"))
    child = os.fork()
    if child == 0:  # the child: wait for a turn, then report
        code = 1
        try:
            queue().acquire()  # waits on flock until the parent's turn ends
            queue().release()
            code = 0
        finally:
            os._exit(code)
    exited = []

    def queued_or_exited():
        if os.waitpid(child, os.WNOHANG)[0]:
            exited.append(child)
        return exited or child in flock_waiters(lock_file())

    until(queued_or_exited, "the child to wait on flock for its turn")
    assert not exited, "the child got a turn while its parent held one, or gave up"
    holder.commit()
    holder.close()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
