"""Jinja filters for the console: times in UTC, ages, inert links for untrusted URLs, and
``visible`` (invisible and bidirectional formatting characters shown as \\u escapes).

Autoescaping is on for every template; nothing here marks client data safe.
"""
from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

from flask import Flask

from app.registration.metadata import escape_display
from app.support import clock


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def age(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = int((clock.now() - value).total_seconds())
    future, seconds = seconds < 0, abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{seconds // size} {unit}"
            break
    else:
        text = f"{seconds} s"
    return f"in {text}" if future else text


def is_https(value: object) -> bool:
    """Client-supplied URLs become links only if they are https (no javascript:, data:, http:)."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


def as_json(value) -> str:
    """Plain text (autoescaped by the template), unlike ``tojson`` which is for scripts."""
    return escape_display(json.dumps(value, sort_keys=True, ensure_ascii=False))


def init_templating(app: Flask) -> None:
    app.jinja_env.filters.update(when=when, age=age, as_json=as_json, visible=escape_display)
    app.jinja_env.tests["https_url"] = is_https
