"""The workloads, built the same way for Ostiary and the peer from their discovery documents."""
from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from joserfc import jwt

from .load import Workload

FORM = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AUDIENCE = "https://api.example.com"
SCOPE = "read"
NAMES = ("cc_basic", "cc_jwt", "exchange", "register", "jwks", "introspect")


@dataclass
class BenchClients:
    """A client_secret_basic client and a private_key_jwt client (joserfc ECKey), both usable."""

    basic_id: str
    basic_secret: str
    jwt_id: str
    jwt_key: object
    assertion_audience: str


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode, then Base64."""
    from urllib.parse import quote
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assertions(client_id: str, key, audience: str, count: int) -> list[str]:
    """RFC 7523 §3 client assertions, each with its own jti (both servers refuse a replay)."""
    now = int(time.time())
    header = {"alg": "ES256", "kid": key.kid} if key.kid else {"alg": "ES256"}
    return [jwt.encode(header, {"iss": client_id, "sub": client_id, "aud": audience,
                                "jti": secrets.token_urlsafe(18), "iat": now, "exp": now + 240}, key)
            for _ in range(count)]


def build(name: str, metadata: dict, clients: BenchClients, *, pool: int, access_token: str,
          registration: dict, exchange_extra: dict | None = None,
          introspected: str | None = None) -> Workload | None:
    """One workload; None when the server does not offer it (the peer has no token exchange)."""
    token = path(metadata["token_endpoint"])
    auth = {"Authorization": basic(clients.basic_id, clients.basic_secret), "Content-Type": FORM}
    if name == "cc_basic":
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
        return Workload("POST", token, auth, [body])
    if name == "cc_jwt":
        bodies = [urlencode({"grant_type": "client_credentials", "scope": SCOPE,
                             "client_id": clients.jwt_id, "client_assertion_type": ASSERTION_TYPE,
                             "client_assertion": a})
                  for a in assertions(clients.jwt_id, clients.jwt_key, clients.assertion_audience, pool)]
        return Workload("POST", token, {"Content-Type": FORM}, bodies)
    if name == "exchange":
        if TOKEN_EXCHANGE not in metadata.get("grant_types_supported", []):
            return None
        body = urlencode({"grant_type": TOKEN_EXCHANGE, "subject_token": access_token,
                          "subject_token_type": ACCESS_TOKEN_TYPE, "scope": SCOPE,
                          **(exchange_extra or {})})
        return Workload("POST", token, auth, [body])
    if name == "register":
        if "registration_endpoint" not in metadata:
            return None
        return Workload("POST", path(metadata["registration_endpoint"]),
                        {"Content-Type": "application/json"}, [json.dumps(registration)], expect=201)
    if name == "jwks":
        return Workload("GET", path(metadata["jwks_uri"]))
    if name == "introspect":
        if "introspection_endpoint" not in metadata:
            return None
        return Workload("POST", path(metadata["introspection_endpoint"]), auth,
                        [urlencode({"token": introspected or access_token})])
    raise ValueError(name)
