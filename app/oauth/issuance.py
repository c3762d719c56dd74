"""The one write of every issuance, committed in groups.

An issued token needs one write transaction: its row, the task row it may start, the client
assertion's ``jti`` (single use) and its audit events, chained under the audit head lock.
That lock is the one point every issuance of every process and instance passes through, and
it is held until the commit is durable, so one issuance per transaction would bound the
whole server by one locked commit per token. Instead, the issuances that arrive in one
process while a commit is under way share the next transaction (leader/follower group
commit, as databases do for their own logs): the first to arrive writes the whole group, the
others wait for its commit. Each issuance's rows still commit with its events or not at all,
and no token leaves before its commit.

Groups form in one of two ways, by how the request is served. Under a threaded WSGI server
(the development server, the test client) the first thread to arrive leads the group and
the others block until it has committed. Under the ASGI front (``app.serving``) requests
run inline on the event loop: each waits (``app.inline.wait_for``) while one writer thread
commits the group, and the loop goes on serving the requests that will form the next one.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749.errors import InvalidClientError
from sqlalchemy import insert

from .. import audit, dbapi, inline
from ..models import IssuedToken, Task
from .client_auth import REPLAYED, spend_jtis

log = logging.getLogger(__name__)

INSERT_TOKEN = insert(IssuedToken.__table__)
INSERT_TASK = insert(Task.__table__)


class IssuanceFailed(RuntimeError):
    """The group's transaction failed: nothing of this issuance was written."""


@dataclass(eq=False)
class Issuance:
    token: dict  # the issued_token row
    events: list[dict]  # audit.values() dicts, in chain order
    task: dict | None = None  # the task row the token starts, if any
    jti: dict | None = None  # the client assertion's assertion_jti row, if any
    error: Exception | None = None
    done: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


class GroupCommit:
    """Per process: whoever finds no commit under way leads; the rest queue for the next group."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._queue: list[Issuance] = []
        self._leading = False
        self._waiting: list[tuple[Issuance, asyncio.Future]] = []  # inline requests: the next group
        self._writing = False
        self._writer: ThreadPoolExecutor | None = None  # made on first use: after gunicorn's fork

    def write(self, issuance: Issuance) -> None:
        """Return once ``issuance`` is committed; raise its refusal or failure otherwise."""
        if inline.running():
            inline.wait_for(self._join_inline(issuance))
        else:
            self._write_threaded(issuance)
        if isinstance(issuance.error, InvalidClientError):
            raise issuance.error
        if issuance.error is not None:
            raise IssuanceFailed("the issuance could not be written") from issuance.error

    def _write_threaded(self, issuance: Issuance) -> None:
        with self._lock:
            self._queue.append(issuance)
            lead, self._leading = not self._leading, True
        if not lead:
            issuance.wake.wait()  # set when written, or when handed the lead for the next group
        if not issuance.done:
            self._lead()

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            _commit(group)
        finally:
            with self._lock:
                for issuance in group:
                    issuance.done = True
                if self._queue:
                    self._queue[0].wake.set()  # the first of the next group leads it
                else:
                    self._leading = False
            for issuance in group:
                issuance.wake.set()

    def _join_inline(self, issuance: Issuance) -> asyncio.Future:
        """On the loop: join the next group; the first to find the writer idle starts it."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.append((issuance, done))
        if not self._writing:
            self._writing = True
            loop.create_task(self._write_inline(loop))
        return done

    async def _write_inline(self, loop) -> None:
        """Commit group after group on the writer thread, until no request waits."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ostiary-issuance")
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                try:
                    await loop.run_in_executor(self._writer, self._commit_in_context,
                                               [issuance for issuance, _ in waiting])
                except BaseException as exc:  # cancelled (shutdown): none may take it for a commit
                    for issuance, _ in waiting:
                        issuance.error = issuance.error or exc
                    raise
                finally:
                    for _, done in waiting:
                        if not done.done():  # (cancelled with its request)
                            done.set_result(None)
        finally:
            self._writing = False

    def _commit_in_context(self, group: list[Issuance]) -> None:
        with self.app.app_context():
            _commit(group)


def _commit(group: list[Issuance]) -> None:
    """Write ``group``; if that fails, every issuance in it carries the error."""
    try:
        _write_group(group)
    except BaseException as exc:
        log.exception("group commit of %d issuances failed", len(group))
        for issuance in group:
            issuance.error = exc
        if not isinstance(exc, Exception):
            raise


def _write_group(group: list[Issuance]) -> None:
    """One transaction. The assertions' jti rows go first, in one statement whose answer (which
    were replays) is awaited before the audit head is locked: from the lock to the commit, no
    statement waits for a result but the lock's own."""
    with dbapi.transaction() as connection:
        fresh = spend_jtis(connection, [i.jti for i in group if i.jti is not None])
        written = []
        for issuance in group:
            if issuance.jti is not None:
                key = (issuance.jti["client_id"], issuance.jti["jti"])
                if key not in fresh:  # used before, or by an earlier copy in this group
                    issuance.error = InvalidClientError(description=REPLAYED)
                    continue
                fresh.discard(key)
            written.append(issuance)
        if not written:
            return
        head = audit.lock_head(connection)
        tasks = [i.task for i in written if i.task is not None]
        if tasks:
            connection.execute(INSERT_TASK, tasks)
        connection.execute(INSERT_TOKEN, [i.token for i in written])
        audit.append_locked(connection, head, [event for i in written for event in i.events])
