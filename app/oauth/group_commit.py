"""What a machine request writes (a token issued, a refusal, an assertion spent), committed in groups.

An issued token needs one write transaction: its row, the task row it may start, the client
assertion's ``jti`` (single use) and its audit events (appended without any shared lock; the
sequencer seals them later, ``app.audit.sequencer``). A refusal, at any machine endpoint,
writes its audit events and spends its assertion's ``jti``; an assertion that authenticates
any other machine request is spent before the request acts. One transaction per request costs
more than the request's own statements (its begin, its commit, and on SQLite its turn at the
one write lock), so the writes that arrive in one process while a commit is under way share
the next transaction (leader/follower group commit, as databases do for their own logs): the
first to arrive writes the whole group, the others wait for its commit. Each request's rows
still commit with its events or not at all, and no answer leaves before its commit.

Groups form in one of two ways, by how the request is served. Under a threaded WSGI server
(the development server, the test client) the first thread to arrive leads the group and
the others block until it has committed. Under the ASGI front (``app.http.serving``) requests
run inline on the event loop: each waits (``app.support.inline.wait_for``) while one writer thread
commits the group, and the loop goes on serving the requests that will form the next one.
No inline request waits for a write lock on the loop's own thread.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749.errors import InvalidClientError, OAuth2Error
from sqlalchemy import Table, insert
from sqlalchemy.sql import ClauseElement

from app import audit
from app.db import dbapi
from app.extensions import db
from app.models import IssuedToken, Task
from app.oauth.client_auth import REPLAYED, spend_jtis
from app.oauth.clients import ClientRecord, StaleClient, changed_clients
from app.support import inline

log = logging.getLogger(__name__)

INSERT_TOKEN = insert(IssuedToken.__table__)
INSERT_TASK = insert(Task.__table__)
# A request read from its socket reaches its write about three turns of the loop later (its
# read, its ASGI task's start, its code up to the write): a group waits that long, so that the
# requests already read join it; waiting longer only adds latency (docs/performance.md).
TURNS_BEFORE_A_GROUP = 3


# Set on a refusal decided inside the group's transaction, after the cached client record it
# was decided on was found unchanged: it rests on no stale record, and is not answered again.
CONFIRMED = "ostiary_confirmed"


class WriteFailed(RuntimeError):
    """The group's transaction failed: nothing of this request's write was written."""


@dataclass(eq=False)
class Spend:
    """A single-use credential that a write uses up (an authorization code, a refresh token).
    ``statement`` marks it used, in the group's transaction, only if it was not, and returns a
    row when it did. If it was used before, nothing of the write is written but what
    ``on_reuse(transaction)`` does and the events it returns (revoking what the first use
    issued), and the request is refused with ``refusal``."""
    statement: ClauseElement
    params: dict
    refusal: OAuth2Error
    on_reuse: Callable[[dbapi.Transaction], list[dict]]


@dataclass(eq=False)
class Write:
    """What one request writes. If its assertion's ``jti`` was used before, nothing of it is
    written but ``on_replay``: a refusal's events as the replay's refusal (the caller cannot
    know which it is until the ``jti`` is spent)."""
    events: list[dict]  # audit.values() dicts, in chain order
    token: dict | None = None  # the issued_token row
    task: dict | None = None  # the task row the token starts, if any
    jti: dict | None = None  # the client assertion's assertion_jti row, if any
    client: ClientRecord | None = None  # the cached record it was decided on, if it was
    spend: Spend | None = None  # the code or refresh token it uses up, if any
    rows: list[tuple[Table, dict]] = field(default_factory=list)  # more rows (a refresh token)
    on_replay: list[dict] | None = None
    error: Exception | None = None
    done: bool = False
    wake: threading.Event | None = None  # a threaded write's (the event loop's need none)


class GroupCommit:
    """Per process: whoever finds no commit under way leads; the rest queue for the next group."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._queue: list[Write] = []
        self._leading = False
        self._waiting: list[tuple[Write, asyncio.Future]] = []  # inline requests: the next group
        self._writing = False
        self._writer: ThreadPoolExecutor | None = None  # made on first use: after gunicorn's fork

    def write(self, request: Write) -> None:
        """Return once ``request``'s write is committed; raise its refusal or failure otherwise.

        The caller's own session transaction ends first, unwritten: on SQLite it may hold the
        write lock the group needs, and nothing a request writes goes any other way."""
        if db.session.registry.has():
            db.session.rollback()
        if inline.running():
            inline.wait_for(self._join_inline(request))
        else:
            self._write_threaded(request)
        if isinstance(request.error, (OAuth2Error, StaleClient)):
            raise request.error
        if request.error is not None:
            raise WriteFailed("the group's transaction failed") from request.error

    def _write_threaded(self, request: Write) -> None:
        request.wake = threading.Event()
        with self._lock:
            self._queue.append(request)
            lead, self._leading = not self._leading, True
        if not lead:
            request.wake.wait()  # set when written, or when handed the lead for the next group
        if not request.done:
            self._lead()

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            _commit(group)
        finally:
            with self._lock:
                for request in group:
                    request.done = True
                if self._queue:
                    self._queue[0].wake.set()  # the first of the next group leads it
                else:
                    self._leading = False
            for request in group:
                request.wake.set()

    def _join_inline(self, request: Write) -> asyncio.Future:
        """On the loop: join the next group; the first to find the writer idle starts it."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.append((request, done))
        if not self._writing:
            self._writing = True
            loop.create_task(self._write_inline(loop))
        return done

    async def _write_inline(self, loop) -> None:
        """Commit group after group on the writer thread, until no request waits. Before it
        takes a group, the loop has a few turns, in which the requests whose bytes have
        already arrived reach their write and join it: a group's cost is mostly its own
        (the lock, the head, the commit), not its requests'."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ostiary-group-commit")
        try:
            while self._waiting:
                waiting = self._waiting  # joins append to it until it is taken
                try:
                    for _ in range(TURNS_BEFORE_A_GROUP):
                        await asyncio.sleep(0)
                    self._waiting = []
                    await loop.run_in_executor(self._writer, self._commit_in_context,
                                               [request for request, _ in waiting])
                except BaseException as exc:  # cancelled (shutdown): none may take it for a commit
                    if self._waiting is waiting:  # cancelled in its turns: taken all the same
                        self._waiting = []
                    for request, _ in waiting:
                        request.error = request.error or exc
                    raise
                finally:
                    for _, done in waiting:
                        if not done.done():  # (cancelled with its request)
                            done.set_result(None)
        finally:
            self._writing = False

    def _commit_in_context(self, group: list[Write]) -> None:
        with self.app.app_context():
            _commit(group)


def _commit(group: list[Write]) -> None:
    """Write ``group``; if that fails, every request in it carries the error."""
    try:
        _write_group(group)
    except BaseException as exc:
        log.exception("group commit of %d writes failed", len(group))
        for request in group:
            request.error = exc
        if not isinstance(exc, Exception):
            raise


def _write_group(group: list[Write]) -> None:
    """One transaction. First the cached client records the group's tokens were decided on are
    checked (``app.oauth.clients``): a token whose client changed is not written. Then the
    assertions' jti rows go in one statement; after the answers of both (which clients changed,
    which jtis were replays), the rows and events go in without a result awaited."""
    with dbapi.transaction() as connection:
        cached = [w.client for w in group if w.client is not None]
        if cached:
            changed = changed_clients(connection, cached)
            for request in group:
                if request.client is not None and request.client.client_id in changed:
                    request.error = StaleClient(request.client.client_id)
            group = [w for w in group if w.error is None]
        fresh = spend_jtis(connection, [w.jti for w in group if w.jti is not None])
        written = []
        for request in group:
            if request.jti is not None:
                key = (request.jti["client_id"], request.jti["jti"])
                if key not in fresh:  # used before, or by an earlier copy in this group
                    request.error = InvalidClientError(description=REPLAYED)
                    if request.on_replay is None:
                        continue
                    request.events, request.token, request.task = request.on_replay, None, None
                else:
                    fresh.discard(key)
            if request.spend is not None and not connection.execute(
                    request.spend.statement, request.spend.params).first():
                request.error = request.spend.refusal
                setattr(request.error, CONFIRMED, True)
                request.events = request.spend.on_reuse(connection)
                request.token, request.task, request.rows = None, None, []
            written.append(request)
        events = [event for w in written for event in w.events]
        tasks = [w.task for w in written if w.task is not None]
        if tasks:
            connection.execute(INSERT_TASK, tasks)
        tokens = [w.token for w in written if w.token is not None]
        if tokens:
            connection.execute(INSERT_TOKEN, tokens)
        for table, row in (pair for w in written for pair in w.rows):
            connection.execute(insert(table), [row])
        audit.append(connection, events)
