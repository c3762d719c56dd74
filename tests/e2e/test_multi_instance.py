"""Two gunicorn instances of one issuer on one PostgreSQL database (and one Redis) behave as one server."""
from __future__ import annotations

import base64
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt as pyjwt
import pytest
import redis
import requests
from joserfc import jwt
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import AuditEvent, Client, InitialAccessToken
from app.registration import iat, lifecycle
from app.support import clock
from tests.console_helpers import csrf_token
from tests.factories import new_key, public_jwks
from tests.servers import TEST_SECRETS, Server, free_port, server_env
from tests.waiting import until

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"
REGISTRATION_LIMIT = 30  # per hour and address, shared by both instances through Redis
LOGIN_LIMIT = 10  # failed console logins per address, counted in the shared database
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUDIENCE = "https://api.example.com"


class Pair:
    """Instances a and b of one issuer, the admin's view of their database, and the registration count."""

    def __init__(self, a: Server, b: Server, issuer: str, iat_token: str):
        self.a, self.b, self.issuer, self.iat_token = a, b, issuer, iat_token
        self.registrations = 0  # every POST to /register counts against the shared limit

    def register(self, server: Server, metadata: dict, token: str | None = None) -> requests.Response:
        self.registrations += 1
        return requests.post(server.url + "/register", json=metadata, timeout=10,
                             headers={"Authorization": f"Bearer {token or self.iat_token}"})


def admin_app(server: Server):
    """The administrator's process: the same database and secrets, services called directly."""
    env = server.env
    return create_app({"DATABASE_URL": env["OSTIARY_DATABASE_URL"], "INSTANCE_PATH": env["OSTIARY_INSTANCE_PATH"],
                       "ISSUER": env["OSTIARY_ISSUER"], **TEST_SECRETS}, check=False)


def in_admin(server: Server, fn):
    app = admin_app(server)
    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()
            db.engine.dispose()


def approve(server: Server, client_id: str) -> None:
    in_admin(server, lambda: lifecycle.approve(
        client_id, version=1, owner="team-agents", purpose="multi-instance test", scopes=["read"], audiences=[AUDIENCE],
        max_token_ttl=300, expires_at=clock.in_(86400), review_at=clock.in_(3600), assurance_level=1,
        proofing_method="in_person", evidence="E2E-1", actor="admin:e2e"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, new_pg_database):
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}", pytrace=False)
    database = new_pg_database()
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"  # as if a's address were the load balancer's
    shared = {"ISSUER": issuer, "KEY_CACHE_SECONDS": 1, "REGISTRATION_POLICY": "initial_access_token",
              "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": f"ostiary-test-{uuid.uuid4().hex}",
              "REGISTRATION_RATE_LIMIT": f"{REGISTRATION_LIMIT} per hour", "PENDING_CAP_PER_ADDRESS": 1000,
              # the limiter's coarse login limit lifted: the failed-login count in the database is tested
              "LOGIN_RATE_LIMIT": "10000 per minute", "LOGIN_MAX_FAILURES_PER_ADDRESS": LOGIN_LIMIT,
              "PROXY_HOPS": 1}  # as behind one TLS-terminating proxy (app.http.serving)
    servers = []
    for name, port in (("a", port_a), ("b", port_b)):
        instance = tmp_path_factory.mktemp(f"instance-{name}")
        servers.append(Server(url=f"http://127.0.0.1:{port}", log=instance / "server.log",
                              env=server_env(instance, port, database, **shared)))
    a, b = servers
    init = a.cli("init")
    assert init.returncode == 0, init.stderr
    token = in_admin(a, lambda: iat.create(max_uses=100, ttl=3600, actor="admin:e2e")[0])
    try:
        a.start()
        b.start()
        yield Pair(a, b, issuer, token)
    finally:
        a.stop()
        b.stop()


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token_from(server: Server, auth: dict) -> requests.Response:
    return requests.post(server.url + "/token", data={"grant_type": "client_credentials", "scope": "read"},
                         headers=auth, timeout=10)


def verify(server: Server, token: str, issuer: str) -> dict:
    key = pyjwt.PyJWKClient(server.url + "/jwks.json", cache_keys=False).get_signing_key_from_jwt(token)
    return pyjwt.decode(token, key.key, algorithms=["ES256"], issuer=issuer, audience=AUDIENCE)


@pytest.fixture(scope="module")
def secret_client(pair):
    """Registered through a, approved by an administrator, used through b."""
    answer = pair.register(pair.a, {"client_name": "multi", "grant_types": ["client_credentials"],
                                    "token_endpoint_auth_method": "client_secret_basic", "scope": "read"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    approve(pair.a, body["client_id"])
    return basic(body["client_id"], body["client_secret"])


def test_registered_through_one_approved_and_used_through_the_other(pair, secret_client):
    answer = token_from(pair.b, secret_client)
    assert answer.status_code == 200, answer.text
    claims = verify(pair.a, answer.json()["access_token"], pair.issuer)
    assert claims["iss"] == pair.issuer and claims["scope"] == "read"


def test_a_token_issued_by_one_is_introspected_and_revoked_through_the_other(pair, secret_client):
    access = token_from(pair.a, secret_client).json()["access_token"]
    seen = requests.post(pair.b.url + "/introspect", data={"token": access}, headers=secret_client, timeout=10)
    assert seen.status_code == 200 and seen.json()["active"] is True
    revoked = requests.post(pair.b.url + "/revoke", data={"token": access}, headers=secret_client, timeout=10)
    assert revoked.status_code == 200, revoked.text
    after = requests.post(pair.a.url + "/introspect", data={"token": access}, headers=secret_client, timeout=10)
    assert after.json() == {"active": False}


def test_a_key_rotated_on_one_is_served_and_used_by_the_other_within_the_cache_time(pair, secret_client):
    before = pyjwt.get_unverified_header(token_from(pair.b, secret_client).json()["access_token"])["kid"]
    rotated = pair.a.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split("active:")[1].split()[0]
    assert new_kid != before

    def signs_with_the_new_key():
        return pyjwt.get_unverified_header(token_from(pair.b, secret_client).json()["access_token"])["kid"] == new_kid
    until(signs_with_the_new_key, "b to sign with the key rotated on a",
          timeout=1 + 3, every=0.2)  # KEY_CACHE_SECONDS, and slack for a loaded machine
    assert new_kid in {k["kid"] for k in requests.get(pair.b.url + "/jwks.json", timeout=10).json()["keys"]}


@pytest.fixture(scope="module")
def key_client(pair):
    key = new_key()
    answer = pair.register(pair.b, {"client_name": "multi jwt", "grant_types": ["client_credentials"],
                                    "token_endpoint_auth_method": "private_key_jwt", "scope": "read",
                                    "jwks": public_jwks(key)})
    assert answer.status_code == 201, answer.text
    approve(pair.b, answer.json()["client_id"])
    return answer.json()["client_id"], key


def assertion(pair, client_id, key) -> dict:
    now = int(time.time())
    signed = jwt.encode({"alg": "ES256", "kid": key.kid}, {
        "iss": client_id, "sub": client_id, "aud": pair.issuer, "jti": secrets.token_urlsafe(16),
        "iat": now, "exp": now + 60}, key)
    return {"grant_type": "client_credentials", "scope": "read", "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}


def test_a_client_assertion_replayed_against_the_other_instance_is_refused(pair, key_client):
    form = assertion(pair, *key_client)
    first = requests.post(pair.a.url + "/token", data=form, timeout=10)
    assert first.status_code == 200, first.text
    replay = requests.post(pair.b.url + "/token", data=form, timeout=10)
    # RFC 6749 §5.2: 400, or 401 when the client authenticated with the Authorization header
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_client", replay.text
    assert "replay" in replay.json()["error_description"]


def test_one_assertion_sent_to_both_instances_at_once_yields_one_token(pair, key_client):
    form = assertion(pair, *key_client)
    targets = [pair.a, pair.b] * 4
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda s: requests.post(s.url + "/token", data=form, timeout=10), targets))
    assert sorted(a.status_code for a in answers) == [200] + [400] * 7
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_client"}


def test_an_initial_access_token_is_not_used_more_than_its_limit_under_concurrency(pair):
    token = in_admin(pair.a, lambda: iat.create(max_uses=3, ttl=600, actor="admin:e2e")[0])
    metadata = {"client_name": "racer", "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic", "scope": "read"}
    targets = [pair.a, pair.b] * 5
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda s: pair.register(s, metadata, token), targets))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 3 + [401] * 7, [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 401} == {"invalid_token"}

    def uses():
        rows = db.session.execute(select(InitialAccessToken).where(InitialAccessToken.max_uses == 3)).scalars()
        return [row.uses for row in rows]
    assert in_admin(pair.a, uses) == [3]


def test_behind_a_proxy_the_client_address_is_recorded_and_limited_not_the_proxys(pair):
    answer = requests.post(pair.b.url + "/register", timeout=10, json={
        "client_name": "proxied", "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic", "scope": "read"},
        headers={"Authorization": f"Bearer {pair.iat_token}", "X-Forwarded-For": "203.0.113.7"})
    assert answer.status_code == 201, answer.text
    client_id = answer.json()["client_id"]

    def recorded():
        client = db.session.get(Client, client_id)
        event = db.session.execute(select(AuditEvent).where(AuditEvent.client_id == client_id)).scalar_one()
        return client.registered_from, event.address
    assert in_admin(pair.a, recorded) == ("203.0.113.7", "203.0.113.7")


def console_login(server: Server, username: str, password: str, address: str) -> requests.Response:
    """One login from a browser of its own, behind the proxy at ``address``."""
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = address
    page = browser.get(server.url + "/console/login", timeout=10)
    return browser.post(server.url + "/console/login", allow_redirects=False, timeout=10, data={
        "csrf_token": csrf_token(page.text), "username": username, "password": password})


def test_failed_console_logins_are_limited_across_instances_and_workers(pair):
    """Alternating instances, two workers each: a per-process count would answer 401 to every one."""
    created = pair.a.cli("admin", "create", "limits-e2e", "--password-stdin", input="e2e limits password\n")
    assert created.returncode == 0, created.stderr
    servers = [pair.a, pair.b]
    codes = [console_login(servers[i % 2], "limits-e2e", "a wrong password", "198.51.100.23").status_code
             for i in range(3 * LOGIN_LIMIT)]
    assert codes == [401] * LOGIN_LIMIT + [429] * (2 * LOGIN_LIMIT)
    refused = console_login(pair.b, "limits-e2e", "e2e limits password", "198.51.100.23")
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    assert console_login(pair.a, "limits-e2e", "e2e limits password", "198.51.100.24").status_code == 303


def test_the_registration_rate_limit_is_shared_through_redis(pair):
    """Last in the module: it spends what is left of the per-address limit, alternating instances.
    With per-process (memory) limits each of the four workers would allow the whole limit."""
    metadata = {"client_name": "limited", "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic", "scope": "read"}
    left = REGISTRATION_LIMIT - pair.registrations
    assert left > 2
    servers = [pair.a, pair.b]
    for i in range(left):
        answer = pair.register(servers[i % 2], metadata)
        assert answer.status_code == 201, (i, answer.text)
    for server in servers:
        refused = pair.register(server, metadata)
        assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
