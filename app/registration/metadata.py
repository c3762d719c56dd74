"""Client metadata validation (RFC 7591 §2), shared by registration and RFC 7592 update.

Every accepted field is checked; fields this server does not understand are
dropped (RFC 7591 §2: the server MUST ignore metadata it does not understand),
so what is stored is exactly what was validated. Display strings with control
characters are refused; invisible formatting and bidirectional overrides (which
can make "evil-agent" read as "trusted-agent") are kept but flagged for the
reviewer and shown escaped.
"""
from __future__ import annotations

import logging
import unicodedata
from urllib.parse import urlsplit

from flask import current_app

from app.policy import scopes as catalogue
from app.registration.errors import InvalidClientMetadataError, InvalidRedirectURIError
from app.support import fetch
from app.support.protocol import (
    ASSERTION_GRANT_TYPES,
    AUTHORIZATION_CODE,
    CLIENT_SECRET_BASIC,
    DEFAULT_GRANT_TYPES,
    GRANT_TYPES,
    NONE,
    PRIVATE_KEY_JWT,
    PUBLIC_CLIENT_GRANT_TYPES,
    REFRESH_TOKEN,
    RESPONSE_TYPE_CODE,
)
from app.trust.keysets import ASYMMETRIC_ALGS, KeySetError, check_jwks

log = logging.getLogger(__name__)

URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
DISPLAY_FIELDS = {"client_name": 255, "software_id": 255, "software_version": 64}
MAX_SCOPES, MAX_LIST = 50, 10
# Ostiary extension: the resource URIs (RFC 8707) the client asks to reach; the approval decides.
AUDIENCES = "audiences"
# The loopback hosts an http redirect URI may name, spelled as RFC 8252 §7.3 and §8.3 spell them.
LOOPBACK_REDIRECT_HOSTS = ("127.0.0.1", "::1", "localhost")


def validate(raw: dict) -> tuple[dict, list[str]]:
    """Returns (clean metadata, review flags) or raises an RFC 7591 §3.2.2 error."""
    out: dict = {}
    flags: list[str] = []
    for name, limit in DISPLAY_FIELDS.items():
        if raw.get(name) is not None:
            out[name] = _display_string(name, raw[name], limit, flags)
    if raw.get("contacts") is not None:
        contacts = _string_list("contacts", raw["contacts"])
        out["contacts"] = [_display_string("contacts", c, 255, flags) for c in contacts]
    for name in URL_FIELDS:
        if raw.get(name) is not None:
            out[name] = _url(name, raw[name])
    if raw.get("redirect_uris") is not None:
        out["redirect_uris"] = [_redirect_uri(u) for u in _string_list("redirect_uris", raw["redirect_uris"])]
    out["grant_types"] = _grant_types(raw.get("grant_types"))
    out["response_types"] = _response_types(raw.get("response_types"), out)
    if raw.get("scope") is not None:
        out["scope"] = _scope(raw["scope"])
    if raw.get(AUDIENCES) is not None:
        out[AUDIENCES] = [_audience(a) for a in _string_list(AUDIENCES, raw[AUDIENCES])]
    _keys(raw, out)
    _auth_method(raw, out)
    return out, flags


def _display_string(name: str, value, limit: int, flags: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientMetadataError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise InvalidClientMetadataError(f"{name} is longer than {limit} characters")
    controls = [c for c in value if unicodedata.category(c) == "Cc"]
    if controls:
        raise InvalidClientMetadataError(f"{name} contains control characters "
                                         f"({', '.join(sorted({f'U+{ord(c):04X}' for c in controls}))})")
    hidden = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in ("Cf", "Co", "Cn")})
    if hidden:
        flags.append(f"{name} contains invisible or bidirectional formatting characters ({', '.join(hidden)})")
    return value


def escape_display(value: str | None) -> str:
    """A display string with control, formatting and unassigned characters shown as \\u escapes.

    For a person, in the console or the CLI: a client's name may be in any script, so only what
    a reader cannot see is escaped. An ``error_description`` must be printable ASCII, which is
    ``app.support.echo.safe_echo``'s job."""
    if value is None:
        return ""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn") else c
                   for c in value)


def _string_list(name: str, value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadataError(f"{name} must be an array of strings")
    if len(value) > MAX_LIST:
        raise InvalidClientMetadataError(f"{name} has more than {MAX_LIST} entries")
    return list(dict.fromkeys(value))


def _url(name: str, value) -> str:
    try:
        return fetch.check_url(value)
    except fetch.FetchError as exc:
        raise InvalidClientMetadataError(f"{name}: {exc}") from None


def _redirect_uri(uri: str) -> str:
    """RFC 6749 §3.1.2: absolute, no fragment; no wildcards; https, or http on loopback (RFC 8252 §7.3)."""
    if len(uri) > 2048:
        raise InvalidRedirectURIError("redirect URI is longer than 2048 characters")
    if "*" in uri:
        raise InvalidRedirectURIError(f"redirect URI {uri!r} contains a wildcard")
    if "#" in uri:
        raise InvalidRedirectURIError(f"redirect URI {uri!r} has a fragment (RFC 6749 §3.1.2)")
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        raise InvalidRedirectURIError(f"redirect URI {uri!r} is malformed") from None
    # The host classified as the fetcher classifies it (app.support.fetch.classify_host). Only the three
    # spellings RFC 8252 uses admit http: 2130706433, 127.1 or [::ffff:127.0.0.1] reach the same
    # loopback address, but are other strings to whatever compares redirect URIs and a disguise
    # to the reviewer, and 0 or 0.0.0.0 reach this host without being loopback at all. Any
    # other numeric host is written as the address it reaches, IPv4 ones as IPv4.
    found = fetch.classify_host(host) if host else None
    loopback = host in LOOPBACK_REDIRECT_HOSTS
    if parts.scheme == "http" and not loopback and found is not None and found.kind in (
            fetch.LOOPBACK, fetch.UNSPECIFIED):
        raise InvalidRedirectURIError(f"redirect URI {uri!r}: http is allowed only on loopback written as "
                                      "http://127.0.0.1, http://[::1] or http://localhost (RFC 8252 section 7.3)"
                                      + (f"; {host} is {found.effective}"
                                         if found.effective is not None and host != str(found.effective) else ""))
    if found is not None and found.address is not None and host != str(found.effective):
        raise InvalidRedirectURIError(f"redirect URI {uri!r} spells the address {found.effective} in a "
                                      f"non-standard form; write it as {found.effective}")
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)) or not host:
        raise InvalidRedirectURIError(f"redirect URI {uri!r} must be an absolute https URI "
                                      "(http only on loopback)")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectURIError(f"redirect URI {uri!r} must not carry credentials")
    return uri


def _grant_types(value) -> list[str]:
    if value is None:
        return list(DEFAULT_GRANT_TYPES)
    grants = _string_list("grant_types", value)
    if not grants:
        raise InvalidClientMetadataError("grant_types must not be empty")
    if unsupported := [g for g in grants if g not in GRANT_TYPES]:
        raise InvalidClientMetadataError(f"unsupported grant_types {', '.join(unsupported)}; "
                                         f"this server supports {', '.join(GRANT_TYPES)}")
    return grants


def _response_types(value, out: dict) -> list[str]:
    """RFC 7591 §2.1: ``code`` exactly when the client uses the authorization code grant, which
    needs its redirect URIs; a refresh token comes only from a person's code."""
    person = AUTHORIZATION_CODE in out["grant_types"]
    if REFRESH_TOKEN in out["grant_types"] and not person:
        raise InvalidClientMetadataError("grant_types refresh_token needs authorization_code: refresh "
                                         "tokens are issued only for a person's authorization")
    if person and not out.get("redirect_uris"):
        raise InvalidRedirectURIError("the authorization_code grant needs redirect_uris (RFC 7591 section 2)")
    expected = [RESPONSE_TYPE_CODE] if person else []
    if value is not None and _string_list("response_types", value) != expected:
        raise InvalidClientMetadataError(
            f"response_types must be {expected or '[]'} for grant_types {', '.join(out['grant_types'])} "
            "(RFC 7591 section 2.1; this server's only response type is code)")
    return expected


def _scope(value) -> str:
    if not isinstance(value, str):
        raise InvalidClientMetadataError("scope must be a space-separated string (RFC 7591 §2)")
    names = list(dict.fromkeys(value.split(" ")))
    names = [n for n in names if n]
    if len(names) > MAX_SCOPES:
        raise InvalidClientMetadataError(f"scope lists more than {MAX_SCOPES} scopes")
    if bad := [n for n in names if not catalogue.SCOPE_TOKEN.match(n)]:
        raise InvalidClientMetadataError(f"not valid scope names (RFC 6749 §3.3): {', '.join(bad)}")
    if unknown := catalogue.current().unknown(names):
        raise InvalidClientMetadataError(f"scopes not offered by this server: {', '.join(unknown)}")
    return " ".join(names)


def _audience(value: str) -> str:
    parts = urlsplit(value)
    if len(value) > 2048 or not parts.scheme or not parts.netloc or parts.fragment or "#" in value:
        raise InvalidClientMetadataError(f"audience {value!r} is not an absolute URI without a fragment "
                                         "(RFC 8707 §2)")
    return value


def _keys(raw: dict, out: dict) -> None:
    if raw.get("jwks") is not None and raw.get("jwks_uri") is not None:
        raise InvalidClientMetadataError("jwks and jwks_uri must not both be present (RFC 7591 §2)")
    if raw.get("jwks") is not None:
        try:
            check_jwks(raw["jwks"])
        except KeySetError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
        out["jwks"] = {"keys": [dict(k) for k in raw["jwks"]["keys"]]}
    if raw.get("jwks_uri") is not None:
        out["jwks_uri"] = _url("jwks_uri", raw["jwks_uri"])


def _auth_method(raw: dict, out: dict) -> None:
    has_keys = "jwks" in out or "jwks_uri" in out
    method = raw.get("token_endpoint_auth_method") or (PRIVATE_KEY_JWT if has_keys else CLIENT_SECRET_BASIC)
    allowed = current_app.config["ALLOWED_AUTH_METHODS"]
    grants = set(out["grant_types"])
    if method == NONE and not grants <= {*PUBLIC_CLIENT_GRANT_TYPES, *ASSERTION_GRANT_TYPES}:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method none (a public client) may use only grant_types "
            f"{', '.join((*PUBLIC_CLIENT_GRANT_TYPES, *ASSERTION_GRANT_TYPES))}; client_credentials and "
            "token exchange need an authenticated client")
    if method != NONE and grants & set(ASSERTION_GRANT_TYPES):
        # RFC 7523 §2.1 with a workload's JWT: the JWT is the credential, and the policy binds it to
        # the client; a secret or key of the client's own would be one more credential to keep.
        raise InvalidClientMetadataError(
            f"grant_types {', '.join(sorted(grants & set(ASSERTION_GRANT_TYPES)))} is for a client with "
            "token_endpoint_auth_method none: the workload's own JWT is its credential")
    if method not in allowed:
        raise InvalidClientMetadataError(f"token_endpoint_auth_method {method!r} is not allowed here; "
                                         f"use one of {', '.join(allowed)}")
    if method == PRIVATE_KEY_JWT and not has_keys:
        raise InvalidClientMetadataError("private_key_jwt needs jwks or jwks_uri")
    out["token_endpoint_auth_method"] = method
    alg = raw.get("token_endpoint_auth_signing_alg")
    if alg is not None:
        if method != PRIVATE_KEY_JWT or alg not in ASYMMETRIC_ALGS:
            raise InvalidClientMetadataError(f"token_endpoint_auth_signing_alg must be one of "
                                             f"{', '.join(ASYMMETRIC_ALGS)} with private_key_jwt")
        out["token_endpoint_auth_signing_alg"] = alg
