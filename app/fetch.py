"""Safe outbound fetching of documents the server is told to trust (a client's
``jwks_uri``, a publisher's JWKS).

A URL that a client registers is a URL the server will call, so it is checked
twice: ``check_url`` refuses non-https URLs and literal loopback, private,
link-local and metadata addresses when the URL is registered; ``fetch_json``
resolves the host, refuses the same addresses after resolution, then connects
to the address it checked (so a DNS answer that changes between the check and
the connection cannot redirect the request), follows no redirects, gives up
after ``FETCH_TIMEOUT`` seconds and ``FETCH_MAX_BYTES`` bytes, and caches
answers for ``FETCH_CACHE_SECONDS``. ``FETCH_ALLOW_HTTP_LOOPBACK`` admits
loopback addresses (plain http included), for development only.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter

from . import clock, inline

log = logging.getLogger(__name__)

# Names that reach cloud metadata services without looking like an address.
METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                  "instance-data.ec2.internal"}
CACHE_ENTRIES = 256


class FetchError(ValueError):
    """The URL may not be fetched, or fetching it failed; the message says why, for the client."""


def check_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """Refuse a URL the server must never call; returns it unchanged."""
    if allow_loopback is None:
        allow_loopback = bool(current_app.config["FETCH_ALLOW_HTTP_LOOPBACK"])
    if not isinstance(url, str) or len(url) > 2048:
        raise FetchError("URL must be a string of at most 2048 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise FetchError("URL is malformed") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise FetchError("URL must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise FetchError("URL must not carry credentials")
    if parts.fragment or "#" in url:
        raise FetchError("URL must not have a fragment")
    address = _literal_address(host)
    loopback = host == "localhost" or host.endswith(".localhost") or (address is not None and address.is_loopback)
    if loopback:
        if not allow_loopback:
            raise FetchError("URL must not point at a loopback address")
        return url
    if parts.scheme != "https":
        raise FetchError("URL must use https")
    if host in METADATA_HOSTS or host.endswith(".internal"):
        raise FetchError("URL must not point at a metadata service")
    if address is not None:
        _check_address(address, allow_loopback)
    return url


def fetch_json(url: str) -> dict:
    """GET a JSON object, safely (see the module docstring). Cached per process."""
    config = current_app.config
    now = clock.timestamp()
    with _lock:
        hit = _cache.get(url)
    if hit and hit[0] > now:
        return hit[1]
    value = inline.blocking(_fetch, url)  # resolving and fetching wait on the network
    with _lock:
        if len(_cache) >= CACHE_ENTRIES:
            _cache.pop(next(iter(_cache)))
        _cache[url] = (now + float(config["FETCH_CACHE_SECONDS"]), value)
    return value


def _fetch(url: str) -> dict:
    config = current_app.config
    allow = bool(config["FETCH_ALLOW_HTTP_LOOPBACK"])
    check_url(url, allow_loopback=allow)
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port)
    _check_address(address, allow)
    pinned = f"[{address}]" if address.version == 6 else str(address)
    target = urlunsplit((parts.scheme, f"{pinned}:{port}", parts.path or "/", parts.query, ""))
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the checked address is the peer
        session.mount(f"{parts.scheme}://", _PinnedAdapter(host))
        try:
            with session.get(target, headers={"Host": parts.netloc, "Accept": "application/json"},
                             timeout=config["FETCH_TIMEOUT"], allow_redirects=False, stream=True) as resp:
                if resp.is_redirect or resp.status_code != 200:
                    raise FetchError(f"{url} answered HTTP {resp.status_code} (redirects are not followed)")
                body = _read_limited(resp, int(config["FETCH_MAX_BYTES"]))
        except requests.RequestException as exc:
            raise FetchError(f"could not fetch {url}: {type(exc).__name__}") from None
    try:
        value = json.loads(body)
    except ValueError:
        raise FetchError(f"{url} did not return JSON") from None
    if not isinstance(value, dict):
        raise FetchError(f"{url} did not return a JSON object")
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()


_cache: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked IP address while TLS verifies (and SNI names) the original host."""

    def __init__(self, hostname: str):
        self._hostname = hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self._hostname
        kwargs["assert_hostname"] = self._hostname
        super().init_poolmanager(*args, **kwargs)


def _read_limited(resp: requests.Response, limit: int) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(f"document is larger than {limit} bytes")
    chunks, size = [], 0
    for chunk in resp.iter_content(8192):
        size += len(chunk)
        if size > limit:
            raise FetchError(f"document is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _resolve(host: str, port: int):
    """The first address the host resolves to (the one we will connect to)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise FetchError(f"cannot resolve {host}") from None
    return ipaddress.ip_address(infos[0][4][0])


def _literal_address(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_address(address, allow_loopback: bool) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        if allow_loopback:
            return
        raise FetchError("URL must not point at a loopback address")
    if address.is_link_local:
        raise FetchError("URL must not point at a link-local or metadata address")
    if not address.is_global or address.is_multicast:
        raise FetchError("URL must not point at a private or reserved address")
