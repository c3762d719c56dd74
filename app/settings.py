"""Settings: defaults < TOML file (``OSTIARY_CONFIG``) < ``OSTIARY_*`` environment.

Every setting is read somewhere; a name that is not in ``DEFAULTS`` is refused,
so a typo in a config file is a start-up error rather than a silent default.
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from app.support.protocol import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    NONE,
    PRIVATE_KEY_JWT,
)

ENV_PREFIX = "OSTIARY_"
RATELIMIT_SCHEMES = ("memory://", "redis://", "rediss://", "redis+sentinel://", "redis+cluster://")
PASSWORD_FLOOR = (2, 19456)  # argon2id time cost and KiB: OWASP's Password Storage Cheat Sheet

DEFAULTS: dict[str, object] = {
    "ISSUER": "http://127.0.0.1:5000",
    "DATABASE_URL": "",  # empty: SQLite in the instance folder
    "SECRET_KEY": "",
    "KEY_ENCRYPTION_KEY": "",
    "INSTANCE_PATH": "instance",
    "SIGNING_ALG": "ES256",
    "KEY_CACHE_SECONDS": 30,  # how long a process trusts its view of the key set
    "ACCESS_TOKEN_TTL": 300,
    "MAX_BODY_BYTES": 64 * 1024,
    "REGISTRATION_POLICY": "open",  # open | initial_access_token | software_statement
    "REGISTRATION_RATE_LIMIT": "20 per minute",
    "RATELIMIT_STORAGE_URI": "memory://",  # redis://host:6379 to share limits between instances
    "RATELIMIT_KEY_PREFIX": "ostiary",  # keeps issuers that share one Redis apart
    # Redis down: keep serving with per-process limits rather than answering 500; the pending
    # caps and the failed-login count are in the database and stay whole meanwhile.
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    # argon2id's cost for people's and administrators' passwords (argon2-cffi's default, RFC 9106's
    # second recommendation); at least OWASP's floor, time 2 with 19 MiB, is accepted.
    "PASSWORD_TIME_COST": 3,
    "PASSWORD_MEMORY_KIB": 64 * 1024,
    "LOGIN_RATE_LIMIT": "10 per minute",  # per address, in the limiter's storage: a coarse first gate
    # Failed logins (the console's and, counted apart, the people's sign-in), in the database (so
    # across workers and instances) over a sliding window. Over either limit a login is refused
    # before its password is checked.
    # Per account above per address, so that one address alone cannot lock an administrator out.
    "LOGIN_FAILURE_WINDOW": 15 * 60,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 10,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 20,
    "PENDING_TTL": 3 * 24 * 3600,
    "PENDING_CAP_PER_ADDRESS": 20,
    "PENDING_CAP_PER_PUBLISHER": 200,
    "CLIENT_SECRET_TTL": 90 * 24 * 3600,
    # "none": public clients (native and browser agents acting for a person), which may use
    # only the authorization code grant, with PKCE, and refresh tokens (protocol.py)
    "ALLOWED_AUTH_METHODS": [PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, NONE],
    "AUTHORIZATION_CODE_TTL": 300,  # seconds; RFC 6749 §4.1.2 recommends at most ten minutes
    "REFRESH_TOKEN_TTL": 14 * 24 * 3600,  # a family's life from the code's exchange; each use rotates it
    # Approvals (app.registration.lifecycle, app.registration.approvals): the expiry and review
    # dates the console and `ostiary registration approve` propose; how long before its review
    # date a client joins the review queue; how long past it an unrenewed client keeps working
    # before the sweep suspends it; the assurance level from which every approval needs an
    # evidence reference, whatever its proofing method.
    "APPROVAL_DAYS": 90,
    "REVIEW_DAYS": 30,
    "REVIEW_WINDOW_DAYS": 14,
    "REVIEW_GRACE_DAYS": 14,
    "EVIDENCE_REQUIRED_FROM_LEVEL": 2,
    # After a client secret is rotated, the previous one keeps working this many seconds (0: it
    # stops at once), so that a client can be given its new secret without an outage.
    "SECRET_ROTATION_GRACE": 24 * 3600,
    "AUTO_APPROVE": False,
    "AUTO_APPROVE_TTL": 30 * 24 * 3600,  # how long a policy approval lasts before review
    "FETCH_ALLOW_HTTP_LOOPBACK": False,
    "FETCH_TIMEOUT": 3.0,
    "FETCH_MAX_BYTES": 64 * 1024,
    "FETCH_CACHE_SECONDS": 300,
    "FETCH_FAILURE_CACHE_SECONDS": 10,  # a key set that could not be fetched is not tried again sooner
    "ASSERTION_MAX_LIFETIME": 300,
    # Client ID Metadata Documents (app.registration.documents): a client_id that is an https
    # URL names a document of its metadata, fetched and kept within these bounds (seconds),
    # whatever its Cache-Control says; off, such a client_id is unknown here. FETCH_CA_FILE: a
    # PEM bundle the fetcher trusts instead of the system's (a private CA; empty: the system's).
    "CLIENT_ID_DOCUMENTS": True,
    "CLIENT_DOCUMENT_MIN_CACHE": 60,
    "CLIENT_DOCUMENT_MAX_CACHE": 24 * 3600,
    # Per caller address, in the limiter's storage: authorization requests naming a URL not seen
    # before, each a fetch (app.oauth.authorize). The token endpoint never fetches such a URL.
    "CLIENT_DOCUMENT_RATE_LIMIT": "20 per minute",
    "FETCH_CA_FILE": "",
    "SCOPES_FILE": "",  # empty: config/scopes.toml shipped with Ostiary
    "POLICY_FILE": "",  # empty: config/policy.toml shipped with Ostiary
    "INCLUDE_OWNER_IN_TOKENS": True,
    "CONSOLE_SESSION_MINUTES": 30,
    # A person's session (app.people.session) ends this long after the sign-in, whatever the
    # person does meanwhile.
    "PERSON_SESSION_MINUTES": 15,
    # Sign-on through the organisation's OpenID provider (app.people.oidc), off while ISSUER is
    # empty. Who may sign in: a verified email in one of ALLOWED_DOMAINS, and/or membership of
    # one of ALLOWED_GROUPS (read from the GROUPS_CLAIM); at least one of the two is required.
    # NAME is the sign-in button's "Sign in with <NAME>" (default: the issuer's host).
    "PEOPLE_OIDC_ISSUER": "",
    "PEOPLE_OIDC_CLIENT_ID": "",
    "PEOPLE_OIDC_CLIENT_SECRET": "",
    "PEOPLE_OIDC_NAME": "",
    "PEOPLE_OIDC_SCOPES": ["openid", "email", "profile"],
    "PEOPLE_OIDC_ALLOWED_DOMAINS": [],
    "PEOPLE_OIDC_ALLOWED_GROUPS": [],
    "PEOPLE_OIDC_GROUPS_CLAIM": "groups",
    # The audit trail's sequencer (app.audit.sequencer): how often each server process looks
    # for events to seal (0: never by itself; `ostiary audit seal` does it), and how often at
    # most it signs a checkpoint of what it sealed.
    "AUDIT_SEAL_SECONDS": 1.0,
    "AUDIT_CHECKPOINT_SECONDS": 60,
    # Serving (config/gunicorn.conf.py, asgi.py). WORKERS 0: one process per core.
    "BIND": "127.0.0.1:8000",
    "WORKERS": 0,
    "THREADS": 8,  # per process, for the requests that are not served inline (app.http.serving)
    # Behind N reverse proxies (TLS termination), the client's address and scheme are the last N
    # X-Forwarded-For/-Proto entries; 0 when clients reach gunicorn directly.
    "PROXY_HOPS": 0,
    "FORWARDED_ALLOW_IPS": "127.0.0.1",
    "ACCESS_LOG": "",  # "-" for standard output; empty: off
}


class StartupError(Exception):
    """Ostiary cannot start; the message is one line for the operator."""


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def load(overrides: dict | None = None, environ=None) -> dict:
    environ = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    path = environ.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_read_toml(Path(path)))
    for name, default in DEFAULTS.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            values[name] = _coerce(name, raw, default)
    values.update(overrides or {})
    values["INSTANCE_PATH"] = str(Path(values["INSTANCE_PATH"]).resolve())
    values["ISSUER"] = check_issuer(values["ISSUER"])
    if not values["DATABASE_URL"]:
        values["DATABASE_URL"] = "sqlite:///" + str(Path(values["INSTANCE_PATH"]) / "ostiary.db")
    values["DATABASE_URL"] = _database_url(values["DATABASE_URL"])
    if values["REGISTRATION_POLICY"] not in ("open", "initial_access_token", "software_statement"):
        raise SettingsError(
            "OSTIARY_REGISTRATION_POLICY must be open, initial_access_token or software_statement"
        )
    if not str(values["RATELIMIT_STORAGE_URI"]).startswith(RATELIMIT_SCHEMES):
        raise SettingsError("OSTIARY_RATELIMIT_STORAGE_URI must be memory:// or a redis:// URL")
    if values["SIGNING_ALG"] not in ("ES256", "RS256"):
        raise SettingsError("OSTIARY_SIGNING_ALG must be ES256 or RS256")
    for name in ("WORKERS", "THREADS", "PROXY_HOPS"):
        _whole(values, name)
    if values["THREADS"] < 1:
        raise SettingsError(f"{ENV_PREFIX}THREADS must be at least 1")
    for name in ("LOGIN_FAILURE_WINDOW", "LOGIN_MAX_FAILURES_PER_ADDRESS", "LOGIN_MAX_FAILURES_PER_ACCOUNT"):
        # No "0 is off": a console without a failed-login limit is not a configuration to offer.
        _whole(values, name, 1)
    for name, floor in (("PASSWORD_TIME_COST", PASSWORD_FLOOR[0]), ("PASSWORD_MEMORY_KIB", PASSWORD_FLOOR[1])):
        _whole(values, name, floor, " (OWASP's least argon2id cost: time 2, memory 19456 KiB)")
    for name in ("APPROVAL_DAYS", "REVIEW_DAYS", "REVIEW_WINDOW_DAYS", "REVIEW_GRACE_DAYS",
                 "EVIDENCE_REQUIRED_FROM_LEVEL", "SECRET_ROTATION_GRACE"):
        _whole(values, name)
    if not 0 <= values["CLIENT_DOCUMENT_MIN_CACHE"] <= values["CLIENT_DOCUMENT_MAX_CACHE"]:
        raise SettingsError(f"{ENV_PREFIX}CLIENT_DOCUMENT_MIN_CACHE must be at least 0 and at most "
                            f"{ENV_PREFIX}CLIENT_DOCUMENT_MAX_CACHE")
    if not 1 <= values["REVIEW_DAYS"] <= values["APPROVAL_DAYS"] <= 3 * 365:
        raise SettingsError(f"{ENV_PREFIX}REVIEW_DAYS must be at least 1 and at most "
                            f"{ENV_PREFIX}APPROVAL_DAYS, itself at most three years (1095 days)")
    return values


def _whole(values: dict, name: str, least: int = 0, why: str = "") -> None:
    """Refuse a setting that is not a whole number of at least ``least`` (a bool is none)."""
    value = values[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        bound = f" of at least {least}" if least else ""
        raise SettingsError(f"{ENV_PREFIX}{name} must be a whole number{bound}{why}")


def check_workers(values: dict, workers: int) -> None:
    """Refuse per-process rate-limit storage when several processes serve: with ``memory://``
    each gunicorn worker counts alone, so the registration and login limits would be
    multiplied by the number of workers. Called by config/gunicorn.conf.py at start-up."""
    if workers > 1 and str(values["RATELIMIT_STORAGE_URI"]).startswith("memory://"):
        raise SettingsError(
            f"OSTIARY_RATELIMIT_STORAGE_URI is memory:// (counted in each process) but gunicorn runs "
            f"{workers} workers: set OSTIARY_RATELIMIT_STORAGE_URI=redis://… or OSTIARY_WORKERS=1")


def require_secrets(values: dict) -> None:
    for name in ("SECRET_KEY", "KEY_ENCRYPTION_KEY"):
        if not values.get(name):
            raise SettingsError(f"{ENV_PREFIX}{name} is not set (see docs/deployment.md)")
        if len(values[name]) < 32:
            raise SettingsError(f"{ENV_PREFIX}{name} must be at least 32 characters of high-entropy text")


def check_issuer(issuer: str) -> str:
    """RFC 8414 §2: an https URL with no query or fragment; plain http only on loopback."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"OSTIARY_ISSUER {issuer!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment or "#" in issuer:
        raise SettingsError(f"OSTIARY_ISSUER {issuer!r} must not have a query or fragment (RFC 8414 §2)")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise SettingsError(f"OSTIARY_ISSUER {issuer!r} must use https unless it is on loopback")
    return issuer.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _database_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise SettingsError("OSTIARY_DATABASE_URL must be a sqlite: or postgresql: URL")
    return url


def _read_toml(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read OSTIARY_CONFIG {path}: {exc}") from None
    values = {}
    for key, value in data.items():
        name = key.upper()
        if name not in DEFAULTS:
            raise SettingsError(f"unknown setting {key!r} in {path}")
        values[name] = value
    return values


def _coerce(name: str, raw: str, default):
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name}={raw!r} is not a valid {type(default).__name__}") from None
    return raw
