"""Helpers for the token tests: a real agent's requests (assertions, grants, introspection)."""
from __future__ import annotations

import json
import secrets

from joserfc import jwt

from app.settings import DEFAULTS
from app.support import clock

ISSUER = DEFAULTS["ISSUER"]  # the test apps' issuer: conftest sets none of its own
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BOTH_GRANTS = ["client_credentials", TOKEN_EXCHANGE]


def assertion(made, aud: str, *, lifetime: int = 60, jti: str | None = None, key=None, header=None,
              now: float | None = None, **claims) -> str:
    """A private_key_jwt client assertion (RFC 7523 §3) signed with the client's key."""
    now = int(clock.timestamp() if now is None else now)
    key = key or made.private_key
    payload = {"iss": made.client_id, "sub": made.client_id, "aud": aud, "iat": now,
               "exp": now + lifetime, "jti": jti or secrets.token_urlsafe(16), **claims}
    head = {"alg": "ES256", "kid": key.kid, **(header or {})}
    return jwt.encode(head, {k: v for k, v in payload.items() if v is not None}, key,
                      algorithms=[head["alg"]])


def auth(made, issuer: str, **assertion_options) -> tuple[dict, dict]:
    """(form fields, headers) that authenticate ``made`` with its registered method."""
    if made.private_key is not None:
        return {"client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(made, issuer, **assertion_options)}, {}
    import base64
    basic = base64.b64encode(f"{made.client_id}:{made.client_secret}".encode()).decode()
    return {}, {"Authorization": f"Basic {basic}"}


REPORTS = "https://api.example.com/reports/2026"


def task(intent="summarize-reports", actions=("read",), locations=(REPORTS,), datatypes=("report",),
         **fields) -> str:
    """One agent_task, by default within the shipped policy's read-reports rule, which bounds
    locations and datatypes; a field given as None is left out."""
    item = {"type": "agent_task", "intent": intent, "actions": list(actions),
            "locations": list(locations) if locations is not None else None,
            "datatypes": list(datatypes) if datatypes is not None else None, **fields}
    return json.dumps([{k: v for k, v in item.items() if v is not None}])


class Agent:
    """An agent talking to a Flask test client (``http``) or to a live server (``requests``)."""

    def __init__(self, made, issuer: str, post):
        self.made, self.issuer, self._post = made, issuer, post

    def post(self, path: str, data: dict, **assertion_options):
        form, headers = auth(self.made, self.issuer, **assertion_options)
        return self._post(path, {**form, **data}, headers)

    def token(self, **data):
        return self.post("/token", {"grant_type": "client_credentials", **data})

    def exchange(self, subject_token: str, subject_type: str = ACCESS_TOKEN, **data):
        return self.post("/token", {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
                                    "subject_token_type": subject_type, **data})

    def introspect(self, token: str):
        return self.post("/introspect", {"token": token})

    def revoke(self, token: str):
        return self.post("/revoke", {"token": token})

    def end_task(self, task_id: str, outcome: str = "done"):
        return self.post("/task/end", {"task_id": task_id, "outcome": outcome})


def test_client_agent(http, made, issuer: str = ISSUER) -> Agent:
    """An agent whose requests go through a Flask test client (``conftest.new_agent`` makes one
    for a test)."""
    def post(path, data, headers):
        return http.post(path, data=data, headers=headers)
    return Agent(made, issuer, post)


test_client_agent.__test__ = False
