"""What a caller sent, echoed back in an ``error_description``.

RFC 6749 §5.2 allows an ``error_description`` printable ASCII only, without ``"`` and ``\\``,
and Authlib's ``OAuth2Error`` refuses any other description with a ``ValueError``: a value
quoted unfiltered would turn a refusal into a 500. Every description that quotes a value goes
through ``safe_echo``. (What a person reads in the console or the CLI is shown by
``app.registration.metadata.escape_display`` instead.)
"""
from __future__ import annotations


def safe_echo(text, limit: int = 64) -> str:
    """``text`` (made a string), clipped to ``limit`` characters, each character RFC 6749 §5.2
    forbids shown as ``?``."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in str(text)[:limit])
