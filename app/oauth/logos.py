"""A client's logo (RFC 7591 §2 ``logo_uri``) on the authorization pages, served from Ostiary's
own origin.

The person's browser never loads a logo from where the client points it: that would tell the
client's host who opens the consent page and when, could mix plain http into the page, and an
SVG or an HTML page behind the URL would be a document of the client's making. Ostiary fetches
the logo itself, through the one safe fetcher (https, the address checked after resolution, no
redirects, ``MAX_BYTES``, ``FETCH_TIMEOUT``), keeps it only if its first bytes are those of a
PNG, JPEG, GIF or WebP image, whatever the answer's Content-Type said, and serves those bytes
as that type, with headers under which a browser does nothing else with them (``nosniff``, a
Content-Security-Policy that allows nothing). Any failure is a 404 with an empty body, and the
page shows the agent's initial where the logo would be (``static/authorize.css``).

Whose logo: a registered client that is pending (its waiting page shows it) or active (its
consent page); a denied, suspended, expired or retired client's is never fetched. Only a
signed-in person's browser asks, as the pages that show it are a signed-in person's: so no one
else can make Ostiary fetch a registered URL.

Logos are kept in this process (``CACHE_BYTES`` in all, ``FETCH_CACHE_SECONDS`` each; a
failure ``FAILURE_SECONDS``, so a broken logo is not fetched again for every page;
``CACHE_ENTRIES`` at most): a copy of
what a client's host serves, never the only copy of anything.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, url_for

from app.extensions import db
from app.models import Client
from app.models.client import ACTIVE, PENDING, might_be_id
from app.people.session import current_person
from app.support import clock, fetch

log = logging.getLogger(__name__)

bp = Blueprint("logos", __name__)

SHOWN = (PENDING, ACTIVE)  # the statuses whose pages show the logo
MAX_BYTES = 128 * 1024  # a logo shown at 56 pixels needs far less
CACHE_BYTES, CACHE_ENTRIES = 4 * 1024 * 1024, 1024
FAILURE_SECONDS = 60
BROWSER_SECONDS = 300  # the person's browser keeps it this long, for itself alone
ACCEPT = "image/png, image/jpeg, image/gif, image/webp"
# What every answer of the route carries: the bytes are an image or nothing, never a document.
HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'",
           "Cross-Origin-Resource-Policy": "same-origin", "Referrer-Policy": "no-referrer"}


def sniff(body: bytes) -> str | None:
    """The raster image type ``body`` is, by its first bytes (the signatures of the WHATWG MIME
    Sniffing Standard §6.1 for PNG, JPEG, GIF and WebP), or None: an SVG, an HTML page or
    anything else is refused, whatever type its server declared."""
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if body[:4] == b"RIFF" and body[8:14] == b"WEBPVP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Logo:
    body: bytes
    content_type: str


def src(client: Client) -> str | None:
    """The logo's address on this origin, for a page about ``client``; None if it has none."""
    if client.status not in SHOWN or not (client.client_metadata or {}).get("logo_uri"):
        return None
    return url_for("logos.serve", client_id=client.client_id)


def initial(client: Client) -> str:
    """What stands for the agent where there is no logo: the first letter or digit of its name
    (as registered: invisible characters, which a page shows escaped, are passed over)."""
    return next((c for c in client.client_name or client.client_id if c.isalnum()), "?").upper()


def logo(client_id: str) -> Logo | None:
    """The logo of client ``client_id`` if it may be shown (see the module docstring), else None.

    Ends the session's transaction before fetching (the values it needs are read by then): no
    request waits on another host with a transaction open, which on SQLite holds the write lock.
    """
    client = db.session.get(Client, client_id) if might_be_id(client_id) else None
    url = (client.client_metadata or {}).get("logo_uri") if client is not None and client.status in SHOWN else None
    db.session.rollback()  # only reads happened; nothing waits on the network in a transaction
    if not isinstance(url, str):
        return None
    key = (client_id, url)
    found, hit = _cache.get(key)
    if hit:
        return found
    try:
        body = fetch.fetch_bytes(url, accept=ACCEPT, max_bytes=MAX_BYTES)
    except (fetch.FetchError, ValueError) as exc:
        log.info("logo of %r not served: %s", client_id, exc)
        found = None
    else:
        content_type = sniff(body)
        if content_type is None:
            log.info("logo of %r not served: %s is not a PNG, JPEG, GIF or WebP image", client_id, url)
        found = Logo(body, content_type) if content_type else None
    seconds = float(current_app.config["FETCH_CACHE_SECONDS"]) if found else FAILURE_SECONDS
    _cache.put(key, found, seconds)
    return found


@bp.get("/authorize/logo/<path:client_id>", merge_slashes=False)  # a URL client id has slashes
def serve(client_id: str):
    """The logo, or 404 with no body: the page shows the agent's initial instead."""
    found = logo(client_id) if current_person() is not None else None
    if found is None:
        return Response(status=404, headers={**HEADERS, "Cache-Control": "no-store"})
    return Response(found.body, mimetype=found.content_type,
                    headers={**HEADERS, "Cache-Control": f"private, max-age={BROWSER_SECONDS}"})


class _Cache:
    """Logos and failures by (client, URL), each until its time is up; ``limit`` bytes and
    ``entries`` in all, the oldest put dropped first."""

    def __init__(self, limit: int, entries: int):
        self.limit, self.entries = limit, entries
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[float, Logo | None]] = {}
        self._size = 0

    def get(self, key) -> tuple[Logo | None, bool]:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] <= clock.timestamp():
                return None, False
            return item[1], True

    def put(self, key, found: Logo | None, seconds: float) -> None:
        with self._lock:
            self._drop(key)
            now = clock.timestamp()
            for old in [k for k, (until, _) in self._items.items() if until <= now]:
                self._drop(old)
            size = len(found.body) if found else 0
            while self._items and (self._size + size > self.limit or len(self._items) >= self.entries):
                self._drop(next(iter(self._items)))
            self._items[key] = (now + seconds, found)
            self._size += size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

    def _drop(self, key) -> None:
        item = self._items.pop(key, None)
        if item is not None and item[1] is not None:
            self._size -= len(item[1].body)


_cache = _Cache(CACHE_BYTES, CACHE_ENTRIES)


def clear_cache() -> None:
    _cache.clear()
