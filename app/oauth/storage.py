"""What the machine endpoints write, and nothing else does: each call is one transaction that
holds the change and its audit events, committed before the call returns (so before any
answer leaves), or rolled back whole.

    issue(token, events, task=…, assertion=…)     a token, the task it starts, its events
    record_refusal(events, assertion=…, …)        a refusal's events
    spend(assertion)                              a client assertion used by another endpoint

An ``assertion`` is the ``assertion_jti`` row of the client assertion that authenticated the
request (``app.oauth.client_auth``): it is spent in the same transaction, and if it was spent
before, the request is a replay and nothing else of it is written.
"""
from __future__ import annotations

import contextlib

from authlib.oauth2.rfc6749.errors import InvalidClientError
from sqlalchemy import insert

from .. import audit
from ..extensions import db
from ..models import IssuedToken, Task
from .client_auth import REPLAYED, spend_jti

INSERT_TOKEN = insert(IssuedToken.__table__)
INSERT_TASK = insert(Task.__table__)


def issue(token: dict, events: list[dict], *, task: dict | None = None, assertion: dict | None = None) -> None:
    """Write an issued token's row (and its task's), with its audit events. Raises
    ``invalid_client`` (replay) if the assertion was spent before; then nothing is written."""
    with _transaction() as connection:
        if assertion is not None and not spend_jti(connection, assertion):
            raise InvalidClientError(description=REPLAYED)
        if task is not None:
            connection.execute(INSERT_TASK, task)
        connection.execute(INSERT_TOKEN, token)
        audit.append(connection, events)


def record_refusal(events: list[dict], *, assertion: dict | None = None,
                   on_replay: list[dict] | None = None) -> bool:
    """Write a refusal's audit events, spending its assertion. If the assertion was spent
    before, the refusal is the replay's: ``on_replay``'s events are written instead, and the
    answer is False."""
    with _transaction() as connection:
        fresh = assertion is None or spend_jti(connection, assertion)
        audit.append(connection, events if fresh else (on_replay or events))
    return fresh


def spend(assertion: dict) -> None:
    """Spend an assertion that authenticated a request before the request acts; raises
    ``invalid_client`` (replay) if it was spent before."""
    with _transaction() as connection:
        if not spend_jti(connection, assertion):
            raise InvalidClientError(description=REPLAYED)


@contextlib.contextmanager
def _transaction():
    """A transaction on a connection of its own, committed at the end of the block, rolled back
    if it raises. The request's ORM session is left as it is, but for one case: on SQLite a
    transaction it holds would hold the write lock this one needs, so it ends first (a machine
    request reads outside any transaction, ``app.database.read``, and writes nothing else)."""
    if db.session.registry.has() and db.session().in_transaction():
        db.session.rollback()
    with db.engine.begin() as connection:
        yield connection
