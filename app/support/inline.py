"""Synchronous code run inline on an asyncio event loop, able to wait without blocking it.

The ASGI front (``app.http.serving``) runs a token request's synchronous code (Flask, Authlib,
the database driver) on the loop's thread, in a greenlet of its own. Where that code must
wait for something that other requests share, the group commit of its issuance, it calls
``wait_for()``: the greenlet hands the awaitable to the loop, which serves other requests
meanwhile and resumes the greenlet with the result (or raises its exception there). This is
how SQLAlchemy's asyncio layer runs its synchronous core, reduced to what Ostiary needs.
A call that may block for long (fetching a client's ``jwks_uri``, an ORM write that waits for
SQLite's write lock) goes through ``blocking()``, to a thread, so that it never stops the loop.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from greenlet import getcurrent, greenlet


class _Inline(greenlet):
    """A greenlet running one call for ``run()``; its parent is the loop's greenlet."""


async def run(fn: Callable[..., Any], *args) -> Any:
    """Call ``fn(*args)`` in a new greenlet, awaiting on its behalf whatever it waits for."""
    task = _Inline(fn, getcurrent())
    step = task.switch(*args)
    while not task.dead:
        try:
            value = await step
        except BaseException as exc:  # raised where the greenlet waits, as a blocking call would
            step = task.throw(exc)
        else:
            step = task.switch(value)
    return step


def running() -> bool:
    """Is the caller inside ``run()``, on the loop's thread?"""
    return isinstance(getcurrent(), _Inline)


def wait_for(awaitable: Awaitable) -> Any:
    """From inside ``run()``: the awaitable's result, the loop serving others meanwhile."""
    return getcurrent().parent.switch(awaitable)


def blocking(fn: Callable[..., Any], *args) -> Any:
    """``fn(*args)``: inside ``run()`` on a thread of the loop's default executor, with the
    caller's context (its Flask app context), the loop serving others meanwhile; elsewhere
    called directly."""
    if not running():
        return fn(*args)
    context = contextvars.copy_context()
    return wait_for(asyncio.get_running_loop().run_in_executor(None, context.run, fn, *args))
