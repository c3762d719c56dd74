"""The whole story against real gunicorn, as a real agent and a real relying service would live it:
register -> approve -> client_credentials with private_key_jwt -> exchange for a task token with
an intent -> the service verifies the JWT with PyJWT against the JWKS and introspects it -> the
task ends -> introspection says inactive. And one assertion sent eight times at once yields one
token (Hydra CVE-2020-5300), on SQLite and on PostgreSQL."""
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey

pytestmark = pytest.mark.e2e

API = "https://api.example.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request):
    return request.getfixturevalue("live_server" if request.param == "sqlite" else "live_server_pg")


class Agent:
    """What an agent does, with nothing but HTTP and its own private key."""

    def __init__(self, server):
        self.server = server
        self.metadata = requests.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
        self.key = ECKey.generate_key("P-256", parameters={"kid": "agent-1", "use": "sig", "alg": "ES256"},
                                      private=True)
        self.client_id = None

    def register(self):
        response = requests.post(self.metadata["registration_endpoint"], json={
            "client_name": "report summariser", "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [self.key.as_dict(private=False)]}, "scope": "read",
            "grant_types": ["client_credentials", TOKEN_EXCHANGE], "audiences": [API]}, timeout=10)
        assert response.status_code == 201, response.text
        self.client_id = response.json()["client_id"]

    def assertion(self, jti=None):
        now = int(time.time())
        return jwt.encode({"alg": "ES256", "kid": self.key.kid, "typ": "JWT"}, {
            "iss": self.client_id, "sub": self.client_id, "aud": self.metadata["issuer"], "iat": now,
            "exp": now + 60, "jti": jti or uuid.uuid4().hex}, self.key, algorithms=["ES256"])

    def post(self, url, **data):
        return requests.post(url, data={"client_assertion_type": ASSERTION_TYPE,
                                        "client_assertion": self.assertion(), **data}, timeout=10)


def cli(server, *args):
    result = server.cli(*args)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def approve(server, client_id, audience=API, *extra):
    cli(server, "registration", "approve", client_id, "--version", "1", "--owner", "team-reports",
        "--purpose", "weekly summaries", "--scope", "read", "--audience", audience, "--evidence", "TICKET-42",
        "--proofing-method", "document_check", "--max-token-ttl", "300", *extra)


def relying_service(server):
    """An API that registers as a client (a secret) and is approved as the relying service of its
    own identifier (RFC 7662 §4: only it may introspect tokens addressed to it)."""
    response = requests.post(server.url + "/register", json={
        "client_name": "reports API", "token_endpoint_auth_method": "client_secret_basic", "scope": "read"},
        timeout=10)
    assert response.status_code == 201, response.text
    info = response.json()
    approve(server, info["client_id"], API, "--serves", API)
    return info["client_id"], info["client_secret"]


def test_agent_story(server):
    agent = Agent(server)
    metadata = agent.metadata
    assert TOKEN_EXCHANGE in metadata["grant_types_supported"]
    assert "agent_task" in metadata["authorization_details_types_supported"]
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]

    agent.register()
    pending = agent.post(metadata["token_endpoint"], grant_type="client_credentials")
    assert pending.json()["error"] == "unauthorized_client" and "pending" in pending.json()["error_description"]
    approve(server, agent.client_id)

    issued = agent.post(metadata["token_endpoint"], grant_type="client_credentials", scope="read")
    assert issued.status_code == 200, issued.text
    assert issued.headers["Cache-Control"] == "no-store"
    held = issued.json()["access_token"]

    intent = [{"type": "agent_task", "intent": "summarize-reports", "description": "weekly summary",
               "actions": ["read"], "locations": [f"{API}/reports/2026-W48"], "datatypes": ["report"],
               "sensitivity": "internal"}]
    exchanged = agent.post(metadata["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=held,
                           subject_token_type=ACCESS_TOKEN, resource=API,
                           authorization_details=json.dumps(intent))
    assert exchanged.status_code == 200, exchanged.text
    task_token, task_id = exchanged.json()["access_token"], exchanged.json()["task_id"]

    # The relying service validates offline with an independent library, against the JWKS...
    assert pyjwt.get_unverified_header(task_token)["typ"] == "at+jwt"
    signing_key = pyjwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False).get_signing_key_from_jwt(task_token)
    claims = pyjwt.decode(task_token, signing_key.key, algorithms=["ES256"], issuer=metadata["issuer"],
                          audience=API, options={"require": ["exp", "iat", "sub", "jti", "client_id"]})
    assert claims["client_id"] == agent.client_id and claims["scope"] == "read"
    assert claims["authorization_details"][0]["intent"] == "summarize-reports"
    assert claims["task_id"] == task_id and claims["owner"] == "team-reports"
    assert claims["exp"] - claims["iat"] <= 300

    # ...and asks the server about it.
    service_id, service_secret = relying_service(server)
    introspect = lambda token: requests.post(  # noqa: E731
        metadata["introspection_endpoint"], data={"token": token}, auth=(service_id, service_secret),
        timeout=10).json()
    answer = introspect(task_token)
    assert answer["active"] is True and answer["jti"] == claims["jti"] and answer["task_id"] == task_id

    ended = agent.post(server.url + "/task/end", task_id=task_id, outcome="done")
    assert ended.status_code == 200 and ended.json()["revoked"] == 1, ended.text
    assert introspect(task_token) == {"active": False}
    assert introspect(held)["active"] is True  # the agent's own token was not the task's

    # An administrator can end a task too, and revoking the held token takes its task tokens with it.
    again = agent.post(metadata["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=held,
                       subject_token_type=ACCESS_TOKEN, authorization_details=json.dumps(intent)).json()
    assert "1 token(s) revoked" in cli(server, "task", "end", again["task_id"])
    assert introspect(again["access_token"]) == {"active": False}
    third = agent.post(metadata["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=held,
                       subject_token_type=ACCESS_TOKEN, authorization_details=json.dumps(intent)).json()
    assert agent.post(metadata["revocation_endpoint"], token=held).status_code == 200
    assert introspect(third["access_token"]) == {"active": False}

    trail = [json.loads(line) for line in cli(server, "audit", "export").splitlines() if line.strip()]
    mine = {e["event_type"] for e in trail if e["client_id"] == agent.client_id}
    assert {"token.issued", "token.exchanged", "policy.decision", "task.ended", "token.revoked",
            "token.refused"} <= mine


def test_eight_concurrent_copies_of_one_assertion_yield_one_token(server):
    agent = Agent(server)
    agent.register()
    approve(server, agent.client_id)
    signed = agent.assertion(jti="only-once")
    start = threading.Barrier(8)

    def send(_):
        start.wait()
        return requests.post(agent.metadata["token_endpoint"], data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [400] * 7, [a.text for a in answers]
    assert all(a.json()["error"] == "invalid_client" for a in answers if a.status_code == 400)
