"""Comparing resource identifiers: a requested RFC 8707 ``resource`` (or RFC 8693 ``audience``)
against the ones an approval, a code or a token holds, in one way everywhere.

Two spellings of one URI are the same resource after RFC 3986 §6.2.2.1 case normalisation
(scheme and host are case-insensitive; percent-encoding hex digits are upper case) and, for
http and https, §6.2.3 scheme-based normalisation (the default port is left out, an empty path
is "/"). Nothing else is normalised: the path stays case-sensitive, and ``/mcp`` and ``/mcp/``
stay two resources (§6.2.3 leaves that to the scheme, and an MCP server names its resource
with one of them). A value that is not an absolute URI (an RFC 8693 logical audience name)
compares as it is, and so does one that the URL parser would quietly rewrite before reading:
with whitespace or control characters anywhere (``urlsplit`` drops tabs and newlines, and
spaces at the ends), a fragment (RFC 8707 §2 forbids it), or an empty query or user info,
whose delimiters RFC 3986 §6.2.3 keeps.

What is granted is the holder's spelling (``match``): a token's ``aud`` is what the
administrator approved, which is what the resource server was configured with.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_REWRITTEN = re.compile(r"[\x00-\x20\x7f#]|\s")  # controls, space and other whitespace, a fragment


def normalise(uri: str) -> str:
    """``uri`` in the normal form described above; as it is if it is not an absolute URI, or
    if the parser would change it in other ways than those (see the module docstring)."""
    if not uri or _REWRITTEN.search(uri):
        return uri
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # an unreadable port or host: nothing to normalise, it compares as it is
        return uri
    if not parts.scheme or not parts.netloc or (parts.query == "" and "?" in uri) or parts.netloc.startswith("@"):
        return uri
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    if userinfo is not None:
        netloc = f"{_upper_percent(userinfo)}@{netloc}"
    path = _upper_percent(parts.path)
    if not path and scheme in DEFAULT_PORTS:
        path = "/"
    return urlunsplit((scheme, netloc, path, _upper_percent(parts.query), ""))


def match(asked: list[str], held: list[str]) -> tuple[list[str], list[str]]:
    """(the ``asked`` values that ``held`` holds, in ``held``'s spelling; the asked values it
    does not hold, as they were asked)."""
    spelled: dict[str, str] = {}
    for value in held:
        spelled.setdefault(normalise(value), value)
    found, missing = [], []
    for value in asked:
        normal = normalise(value)
        if normal in spelled:
            found.append(spelled[normal])
        else:
            missing.append(value)
    return list(dict.fromkeys(found)), list(dict.fromkeys(missing))


def _upper_percent(text: str) -> str:
    return _PERCENT.sub(lambda m: m.group(0).upper(), text)
