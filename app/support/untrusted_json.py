"""The one parser for JSON that comes from outside: request bodies, form fields that carry JSON,
JWT headers and payloads, fetched documents.

The invariant: no untrusted text reaches a recursive JSON parser before its nesting depth and
size have been measured without recursion. Python's ``json`` module, and joserfc, which parses
JWT headers and payloads with it, recurse once per level of nesting, so deep enough nesting
raises ``RecursionError``, which no endpoint expects: a 500, before authentication for a client
assertion. ``loads`` measures first, with regular expressions (linear, not recursive), and
refuses with ``UntrustedJSONError``, whose message is fit for an ``error_description``
(RFC 6749 §5.2); ``check_jwt`` does the same for a JWT before any JOSE library sees it.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from itertools import accumulate

MAX_BYTES = 64 * 1024  # the default MAX_BODY_BYTES: no request carries more
MAX_DEPTH = 32  # far below the recursion limit, far above what the documents here need

# A JSON string (RFC 8259 §7); one left open runs to the end of the text, as for the parser.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class UntrustedJSONError(ValueError):
    """The text is not JSON, or is too large or too deep; the message says which, without
    double quotes or backslashes."""


def loads(text: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          what: str = "the text") -> object:
    """``json.loads`` for untrusted text: at most ``max_bytes`` bytes of UTF-8 (RFC 8259 §8.1)
    nested at most ``max_depth`` arrays or objects deep, numbers finite (RFC 8259 §6 has no
    NaN or Infinity). ``what`` names the text in the messages. ``max_depth`` must stay far
    below the interpreter's recursion limit."""
    if len(text) > max_bytes:
        raise UntrustedJSONError(f"{what} is larger than {max_bytes} bytes")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise UntrustedJSONError(f"{what} is not UTF-8 (RFC 8259 section 8.1)") from None
    elif len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise UntrustedJSONError(f"{what} is larger than {max_bytes} bytes")
    # Fewer openings than the limit cannot nest past it: most texts need no scan.
    if text.count("[") + text.count("{") > max_depth and depth(text) > max_depth:
        raise UntrustedJSONError(f"{what} is nested deeper than {max_depth} levels")
    try:
        return _DECODER.decode(text)
    except UntrustedJSONError as exc:
        raise UntrustedJSONError(f"{what} {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        where = f" (at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise UntrustedJSONError(f"{what} is not valid JSON{where}") from None


def depth(text: str) -> int:
    """How many arrays and objects deep the text nests, counting brackets outside strings.

    Where the text is valid JSON this is its nesting depth; past the first error the parser
    stops, so counting on there can only overstate the depth it would reach."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_jwt(token: str, *, max_depth: int = MAX_DEPTH, what: str = "the JWT") -> None:
    """Refuse a JWT whose header or payload is not bounded JSON, before it is handed to
    joserfc or Authlib (which parse both recursively, the payload of a client assertion before
    its signature is checked). ``token`` must be a compact JWS (RFC 7515 §7.1): three
    base64url segments (RFC 7515 §2), or an unencoded payload when the header says
    ``b64: false`` (RFC 7797 §3)."""
    segments = token.split(".") if isinstance(token, str) else []
    if len(segments) != 3:
        raise UntrustedJSONError(f"{what} is not a compact JWS (three dot-separated parts)")
    header = loads(_base64url(segments[0], f"{what} header"), max_depth=max_depth, what=f"{what} header")
    # joserfc takes the payload as unencoded when b64 is there and is anything but true.
    unencoded = isinstance(header, dict) and header.get("b64", True) is not True
    payload = segments[1] if unencoded else _base64url(segments[1], f"{what} payload")
    loads(payload, max_depth=max_depth, what=f"{what} payload")


def _base64url(segment: str, what: str) -> bytes:
    """RFC 7515 §2 base64url without padding. Laxer than joserfc's decoder, never stricter:
    a segment joserfc decodes decodes here to the same bytes."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise UntrustedJSONError(f"{what} is not base64url") from None


def _refuse_constant(name: str):
    raise UntrustedJSONError(f"holds {name}, which is not JSON (RFC 8259 section 6)")


def _finite(literal: str) -> float:
    """A number too large for a float would be Infinity, which JSON does not have either."""
    value = float(literal)
    if not math.isfinite(value):
        raise UntrustedJSONError("holds a number too large for a float (RFC 8259 section 6)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)
