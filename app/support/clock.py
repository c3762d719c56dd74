"""The one clock: expiry, TTLs and rotation read it, tests move it."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

_offset = 0.0


def now() -> datetime:
    """Aware UTC time (naive datetimes never leave this module)."""
    return datetime.fromtimestamp(timestamp(), tz=timezone.utc)


def timestamp() -> float:
    return time.time() + _offset


def advance(seconds: float) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += seconds


def reset() -> None:
    global _offset
    _offset = 0.0


def in_(seconds: float) -> datetime:
    return now() + timedelta(seconds=seconds)
