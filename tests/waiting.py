"""Waiting for a condition, never for a length of time: a test that needs something to have
happened polls for it, and fails at a deadline if it never does."""
from __future__ import annotations

import os
import time


def until(condition, what: str, timeout: float = 10, every: float = 0.1):
    """Check ``condition()`` every ``every`` seconds until it returns something true, and return
    that; fail (``AssertionError`` naming ``what``) if it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)
    return value


def flock_waiters(path: str) -> set[int]:
    """The processes (``/proc/locks`` names a thread by its process) waiting for an ``flock`` on
    the file at ``path``: the kernel's own list, so a waiter is known to be blocked, not merely
    about to ask. (Lines read "1: -> FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF".)"""
    inode = str(os.stat(path).st_ino)
    waiting = set()
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" in fields and "FLOCK" in fields:
                at = fields.index("FLOCK")
                if fields[at + 4].rsplit(":", 1)[1] == inode:
                    waiting.add(int(fields[at + 3]))
    return waiting
