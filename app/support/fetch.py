"""Safe outbound fetching of documents the server is told to trust (a client's
``jwks_uri``, a publisher's JWKS), and of a client's logo (``fetch_bytes``).

A URL that a client registers is a URL the server will call, so it is checked
twice: ``check_url`` refuses non-https URLs and literal loopback, private,
link-local and metadata addresses when the URL is registered; ``fetch_json``
resolves the host, refuses the same addresses after resolution, then connects
to the address it checked (so a DNS answer that changes between the check and
the connection cannot redirect the request), follows no redirects, gives up
after ``FETCH_TIMEOUT`` seconds and ``FETCH_MAX_BYTES`` bytes, and caches
answers for ``FETCH_CACHE_SECONDS``; ``fetch_document`` fetches the same way, uncached, and
tells the caller what the answer's ``Cache-Control`` says. ``FETCH_ALLOW_HTTP_LOOPBACK`` admits
loopback addresses (plain http included), for development only; ``FETCH_CA_FILE`` replaces the
system's certificate authorities with a bundle of the operator's.

Both checks classify a host with one function, ``classify_host``, which reads a numeric
host as the C resolver does (``127.1``, ``2130706433``, ``0x7f000001`` and ``0177.0.0.1``
are all 127.0.0.1 to ``getaddrinfo``) and classifies an IPv6 address that embeds an
IPv4 address by the IPv4 address it reaches.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from app.support import clock, inline
from app.support.untrusted_json import UntrustedJSONError, loads

log = logging.getLogger(__name__)

# Names that reach cloud metadata services without looking like an address.
METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                  "instance-data.ec2.internal"}
# Platform endpoints reachable only from inside a cloud, some of them outside link-local space.
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")}
# Names the stock hosts file maps to loopback, besides RFC 6761 §6.3's localhost.
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
CACHE_ENTRIES = 256

# What ``classify_host`` says a host is.
LOOPBACK, UNSPECIFIED, LINK_LOCAL, METADATA = "loopback", "unspecified", "link-local", "metadata"
PRIVATE, PUBLIC, NAME = "private", "public", "name"
REFUSALS = {
    LOOPBACK: "URL must not point at a loopback address",
    UNSPECIFIED: "URL must not point at an unspecified address, which reaches this host",
    LINK_LOCAL: "URL must not point at a link-local or metadata address",
    METADATA: "URL must not point at a link-local address or a metadata service",
    PRIVATE: "URL must not point at a private or reserved address",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 §2.1, the well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # RFC 1122 §3.2.1.3


class HostClass(NamedTuple):
    """What a host is. ``address`` is the address a numeric host spells (None for a name);
    ``effective`` the one it reaches: the embedded IPv4 address of an IPv4-mapped,
    IPv4-compatible, 6to4 or NAT64 address, else ``address``."""
    kind: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    effective: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


class FetchError(ValueError):
    """The URL may not be fetched, or fetching it failed; the message says why, for the client."""


def check_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """Refuse a URL the server must never call; returns it unchanged."""
    if allow_loopback is None:
        allow_loopback = bool(current_app.config["FETCH_ALLOW_HTTP_LOOPBACK"])
    if not isinstance(url, str) or len(url) > 2048:
        raise FetchError("URL must be a string of at most 2048 characters")
    if any(c <= " " or c == "\x7f" for c in url):
        # urlsplit drops tabs and newlines and strips spaces: what it reads is not what was given
        raise FetchError("URL must not contain spaces or control characters")
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
    found = classify_host(host)
    if found.kind == NAME:
        try:
            host.encode("idna")
        except UnicodeError:  # an empty or over-long label: no resolver could be asked for it
            raise FetchError("URL has a host name that is not a valid DNS name") from None
    if found.kind == LOOPBACK:
        if not allow_loopback:
            raise FetchError(REFUSALS[LOOPBACK] + _spelling(host, found))
        return url
    if parts.scheme != "https":
        raise FetchError("URL must use https")
    if found.kind not in (PUBLIC, NAME):  # a name is checked again once resolved (_fetch)
        raise FetchError(REFUSALS[found.kind] + _spelling(host, found))
    return url


def classify_host(host: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> HostClass:
    """What ``host`` (a URL's host, brackets optional, or a resolved address) is, without a
    DNS query: the one classification both checks use (see the module docstring).

    A numeric host is read as ``getaddrinfo`` reads it with ``AI_NUMERICHOST`` (IPv4 in
    every ``inet_aton`` form: ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``0``)
    and, should that not take it, as ``inet_aton`` or ``ipaddress`` read it: a host that any
    of them reads as an address is that address. An IPv6 address that embeds an IPv4 one is
    classified by the IPv4 address: IPv4-mapped (RFC 4291 §2.5.5.2), IPv4-compatible
    (RFC 4291 §2.5.5.1), 6to4 (RFC 3056 §2) and the NAT64 well-known prefix (RFC 6052 §2.1).
    The local-use NAT64 prefix (RFC 8215) is private. ``localhost`` and its subdomains are
    loopback (RFC 6761 §6.3); cloud metadata names are ``METADATA``; any other name is
    ``NAME``, to be resolved and classified again before it is called.
    """
    if isinstance(host, str):
        name = _normalise(host)
        address = _numeric(name)
        if address is None:
            if name in LOOPBACK_NAMES or name.endswith(".localhost"):
                return HostClass(LOOPBACK)
            if name in METADATA_HOSTS or name.endswith(".internal"):
                return HostClass(METADATA)
            return HostClass(NAME)
    else:
        address = host
    effective = _embedded_ipv4(address) or address
    if address in METADATA_ADDRESSES or effective in METADATA_ADDRESSES:
        kind = METADATA
    elif effective.is_loopback:
        kind = LOOPBACK
    elif effective.is_unspecified or (effective.version == 4 and effective in _THIS_NETWORK):
        kind = UNSPECIFIED  # connecting to 0.0.0.0 or :: reaches this host
    elif effective.is_link_local:
        kind = LINK_LOCAL
    elif not effective.is_global or effective.is_multicast or address in _NAT64_LOCAL:
        kind = PRIVATE
    else:
        kind = PUBLIC
    return HostClass(kind, address, effective)


def fetch_json(url: str) -> dict:
    """GET a JSON object, safely (see the module docstring). Cached per process, a failure too
    for FETCH_FAILURE_CACHE_SECONDS: a key set is fetched on a stranger's request (an assertion
    naming a client or a trusted issuer), and without that memory each such request would make
    this server fetch again from a host that is down, and wait up to FETCH_TIMEOUT for it."""
    config = current_app.config
    now = clock.timestamp()
    with _lock:
        hit = _cache.get(url)
    if hit and hit[0] > now:
        if isinstance(hit[1], FetchError):
            raise FetchError(str(hit[1]))
        return hit[1]
    try:
        value = inline.blocking(_fetch, url)  # resolving and fetching wait on the network
    except FetchError as exc:
        _keep(url, now + float(config["FETCH_FAILURE_CACHE_SECONDS"]), exc)
        raise
    _keep(url, now + float(config["FETCH_CACHE_SECONDS"]), value)
    return value


def _keep(url: str, until: float, value: dict | FetchError) -> None:
    with _lock:
        if len(_cache) >= CACHE_ENTRIES:
            _cache.pop(next(iter(_cache)))
        _cache[url] = (until, value)


def fetch_bytes(url: str, *, accept: str, max_bytes: int) -> bytes:
    """GET a document's bytes, safely (see the module docstring), at most ``max_bytes`` of them.
    Not cached: the caller knows what it may keep, and for how long."""
    return inline.blocking(_download, url, accept, max_bytes)


class Fetched(NamedTuple):
    """A document and what its ``Cache-Control`` header (RFC 9111 §5.2.2) says of keeping it:
    ``max_age`` in seconds (None: it says nothing), ``no_store`` for no-store or no-cache."""
    value: dict
    max_age: int | None
    no_store: bool


def fetch_document(url: str) -> Fetched:
    """GET a JSON object as ``fetch_json`` does, uncached, with what its caching headers say: for
    a caller that keeps the document itself and must honour them (client ID metadata documents,
    ``app.registration.documents``)."""
    return inline.blocking(_get, url)


def cache_control(header: str | None) -> tuple[int | None, bool]:
    """(max-age, no-store) from a ``Cache-Control`` value; a malformed max-age is no max-age."""
    max_age, no_store = None, False
    for directive in (header or "").lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            no_store = True
        elif name == "max-age" and value.strip().strip('"').isdigit():
            max_age = int(value.strip().strip('"'))
    return max_age, no_store


def _get(url: str) -> Fetched:
    headers = CaseInsensitiveDict()
    value = _fetch(url, headers)
    return Fetched(value, *cache_control(headers.get("Cache-Control")))


def _fetch(url: str, headers: dict | None = None) -> dict:
    config = current_app.config
    body = _download(url, "application/json", int(config["FETCH_MAX_BYTES"]), headers)
    try:
        value = loads(body, max_bytes=int(config["FETCH_MAX_BYTES"]), what="the document")
    except UntrustedJSONError as exc:
        raise FetchError(f"{url} did not return JSON that may be read: {exc}") from None
    if not isinstance(value, dict):
        raise FetchError(f"{url} did not return a JSON object")
    return value


def _download(url: str, accept: str, limit: int, headers: dict | None = None) -> bytes:
    """The body of a 200 answer to GET ``url``, by the checks of the module docstring (and, into
    ``headers`` if given, the answer's headers)."""
    config = current_app.config
    peer = checked_peer(url, allow_loopback=bool(config["FETCH_ALLOW_HTTP_LOOPBACK"]))
    parts = urlsplit(url)
    pinned = f"[{peer.address}]" if peer.address.version == 6 else str(peer.address)
    target = urlunsplit((peer.scheme, f"{pinned}:{peer.port}", parts.path or "/", parts.query, ""))
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the checked address is the peer
        session.verify = config["FETCH_CA_FILE"] or True
        session.mount(f"{peer.scheme}://", _PinnedAdapter(peer.host))
        try:
            with session.get(target, headers={"Host": peer.netloc, "Accept": accept},
                             timeout=config["FETCH_TIMEOUT"], allow_redirects=False, stream=True) as resp:
                if resp.is_redirect or resp.status_code != 200:
                    raise FetchError(f"{url} answered HTTP {resp.status_code} (redirects are not followed)")
                if headers is not None:
                    headers.update(resp.headers)
                return _read_limited(resp, limit, float(config["FETCH_TIMEOUT"]))
        except requests.RequestException as exc:
            raise FetchError(f"could not fetch {url}: {type(exc).__name__}") from None


def clear_cache() -> None:
    with _lock:
        _cache.clear()


_cache: dict[str, tuple[float, dict | FetchError]] = {}
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


def _read_limited(resp: requests.Response, limit: int, timeout: float) -> bytes:
    """The body, at most ``limit`` bytes, read within ``timeout`` seconds in all: the socket's timeout
    bounds each wait, not their sum, and a server that sends a byte now and then would keep a
    worker for as long as it likes. ``read1`` returns what has arrived, so the deadline is
    looked at after every wait (the last may end up to one timeout past it)."""
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(f"document is larger than {limit} bytes")
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    while chunk := resp.raw.read1(8192, decode_content=True):
        size += len(chunk)
        if size > limit:
            raise FetchError(f"document is larger than {limit} bytes")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise FetchError(f"the answer took longer than {timeout:g} seconds")
    return b"".join(chunks)


def _resolve(host: str, port: int):
    """The first address the host resolves to (the one we will connect to)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # UnicodeError: a label IDNA cannot encode
        raise FetchError(f"cannot resolve {host}") from None
    return ipaddress.ip_address(infos[0][4][0])


def _normalise(host: str) -> str:
    """The host as the resolver is handed it: no brackets, no final dot, lower case, and
    IDNA-encoded as Python's ``getaddrinfo`` encodes it (so full-width digits and ideographic
    full stops are ASCII digits and dots here, as they are there)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host


def _numeric(host: str):
    """The address a numeric host spells, or None if it is a name (no DNS query is made)."""
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)[0][4][0])
    except (OSError, ValueError, IndexError):
        pass
    try:  # every inet_aton form, should this platform's getaddrinfo take fewer
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        pass
    try:  # an IPv6 zone the resolver does not know is still link-local
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 address carries, for the prefixes that route to it."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _spelling(host: str, found: HostClass) -> str:
    """For a literal address spelled unusually, the address it is (the registrant wrote it)."""
    if found.effective is None or host.strip("[]") == str(found.effective):
        return ""
    return f" ({host} is {found.effective})"


class Peer(NamedTuple):
    """Where a checked URL may be called: its ``host`` and ``netloc`` as written, and the
    ``address`` it resolved to, classified and allowed (``checked_peer``)."""
    scheme: str
    host: str
    netloc: str
    port: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


def checked_peer(url: str, *, allow_loopback: bool) -> Peer:
    """The address ``url`` may be called at, by the checks of the module docstring: the URL
    (``check_url``), then the host resolved and its address classified again. Raises
    ``FetchError``."""
    check_url(url, allow_loopback=allow_loopback)
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port)
    kind = classify_host(address).kind
    if kind != PUBLIC and not (kind == LOOPBACK and allow_loopback):
        raise FetchError(REFUSALS.get(kind, REFUSALS[PRIVATE]))  # the resolved address is not told
    if parts.scheme != "https" and kind != LOOPBACK:
        raise FetchError("URL must use https")  # plain http was admitted for a loopback name only
    return Peer(parts.scheme, host, parts.netloc, port, address)


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that calls only where ``fetch_json`` would, for a library that makes
    its requests itself on a ``requests.Session`` (Authlib's OAuth client, ``app.people.oidc``):
    mount it with ``guard``.

    Every request's URL goes through ``checked_peer`` and the connection is made to the address
    checked (TLS still verifies, and SNI names, the host of the URL); no proxy is used, a
    redirect is refused rather than followed, every wait gives up after ``timeout`` seconds and a
    body larger than ``max_bytes`` is refused. The refusals are ``FetchError``.
    """

    def __init__(self, *, allow_loopback: bool, timeout: float, max_bytes: int):
        self._allow_loopback, self._timeout, self._max_bytes = allow_loopback, timeout, max_bytes
        super().__init__(max_retries=0)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        # The fetcher's time limit, whatever the library asked for (often nothing: no limit).
        response = super().send(request, stream=True, timeout=self._timeout, verify=verify, cert=cert)
        try:
            if response.is_redirect:
                raise FetchError(f"{_shown(request.url)} answered HTTP {response.status_code} "
                                 "(redirects are not followed)")
            body = _read_limited(response, self._max_bytes, self._timeout)
        finally:
            response.close()
        # Where requests keeps a body it has read (Response.content): the library reads it there.
        response._content = body
        return response

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        peer = checked_peer(request.url, allow_loopback=self._allow_loopback)
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        host_params = {**host_params, "host": str(peer.address)}
        if peer.scheme == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": peer.host, "assert_hostname": peer.host}
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request, proxies):
        return request.path_url  # never a proxy's absolute form: the checked address is the peer

    def add_headers(self, request, **kwargs):
        request.headers["Host"] = urlsplit(request.url).netloc  # the connection is to an address


def guard(session: requests.Session) -> requests.Session:
    """Make every request of ``session`` go through ``GuardedAdapter``, with the fetcher's
    settings (``FETCH_ALLOW_HTTP_LOOPBACK``, ``FETCH_TIMEOUT``, ``FETCH_MAX_BYTES``,
    ``FETCH_CA_FILE``); no proxy or certificate bundle from the environment. Returns it."""
    config = current_app.config
    adapter = GuardedAdapter(allow_loopback=bool(config["FETCH_ALLOW_HTTP_LOOPBACK"]),
                             timeout=float(config["FETCH_TIMEOUT"]), max_bytes=int(config["FETCH_MAX_BYTES"]))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False
    session.verify = config["FETCH_CA_FILE"] or True
    return session


def _shown(url: str) -> str:
    """A URL as an error may name it: without its query (a library's request may carry a code)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
