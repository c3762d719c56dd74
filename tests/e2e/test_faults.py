"""One of two instances is SIGKILLed and restarted under concurrent registrations and token requests:
every token a client received is in the audit trail, no registration is half-written, and the
survivor keeps serving."""
from __future__ import annotations

import base64
import threading
import time

import jwt as pyjwt
import pytest
import requests
from sqlalchemy import select

from app import audit
from app.audit import trail
from app.extensions import db
from app.models import AuditEvent, Client, IssuedToken
from app.registration import lifecycle
from app.registration.service import register
from app.support import clock
from tests.factories import count
from tests.servers import TEST_SECRETS, Server, free_port, server_env
from tests.waiting import until

pytestmark = pytest.mark.e2e

AUDIENCE = "https://api.example.com"
LOAD_THREADS = 6
SURVIVOR_ANSWERS = 20  # token requests b answers while a is down, every one of them a success


def admin(server: Server):
    from app import create_app
    env = server.env
    return create_app({"DATABASE_URL": env["OSTIARY_DATABASE_URL"], "INSTANCE_PATH": env["OSTIARY_INSTANCE_PATH"],
                       "ISSUER": env["OSTIARY_ISSUER"], **TEST_SECRETS}, check=False)


@pytest.fixture
def instances(tmp_path, new_pg_database):
    database = new_pg_database()
    port_a, port_b = free_port(), free_port()
    shared = {"ISSUER": f"http://127.0.0.1:{port_a}", "REGISTRATION_RATE_LIMIT": "100000 per minute",
              "PENDING_CAP_PER_ADDRESS": 100000}
    servers = []
    for name, port in (("a", port_a), ("b", port_b)):
        (tmp_path / name).mkdir()
        servers.append(Server(url=f"http://127.0.0.1:{port}", log=tmp_path / name / "server.log",
                              env=server_env(tmp_path / name, port, database, **shared)))
    init = servers[0].cli("init")
    assert init.returncode == 0, init.stderr
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def approved_client(server: Server) -> dict:
    app = admin(server)
    with app.app_context():
        made = register({"client_name": "under fire", "grant_types": ["client_credentials"],
                         "token_endpoint_auth_method": "client_secret_basic", "scope": "read"},
                        address="127.0.0.1")
        lifecycle.approve(made.client.client_id, version=made.client.version, owner="team-agents", purpose="fault test", scopes=["read"],
                          audiences=[AUDIENCE], max_token_ttl=300, expires_at=clock.in_(86400),
                          review_at=clock.in_(3600), assurance_level=1, proofing_method="in_person",
                          evidence="E2E-1", actor="admin:e2e")
        raw = f"{made.client.client_id}:{made.client_secret}".encode()
        db.session.remove()
        db.engine.dispose()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def sealed() -> bool:
    """In an app context: whether the servers' own sequencers have sealed every event."""
    db.session.rollback()  # a fresh look
    return trail.unsealed()[0] == 0


class Load:
    """Threads sending token requests and registrations, alternately to each instance, until stopped."""

    def __init__(self, servers, auth):
        self.servers, self.auth = servers, auth
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = []  # (monotonic time, server url, status, json or None)

    def worker(self, n: int):
        i = n
        while not self.stop.is_set():
            server = self.servers[i % 2]
            try:
                if i % 4 == 0:
                    answer = requests.post(server.url + "/register", timeout=10, json={
                        "client_name": f"agent {n}-{i}", "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_basic", "scope": "read"})
                else:
                    answer = requests.post(server.url + "/token", headers=self.auth, timeout=10,
                                           data={"grant_type": "client_credentials", "scope": "read"})
                record = (time.monotonic(), server.url, answer.status_code, answer.json())
            except (requests.ConnectionError, requests.Timeout, ValueError):
                record = (time.monotonic(), server.url, None, None)  # the killed instance
            with self.lock:
                self.answers.append(record)
            i += 1

    def answered(self, server: Server, since: float, statuses=(200, 201)) -> list:
        """The answers ``server`` gave after ``since`` (monotonic time) with one of ``statuses``
        (None: the connection failed)."""
        with self.lock:
            return [x for x in self.answers if x[0] > since and x[1] == server.url and x[2] in statuses]

    def __enter__(self):
        self.threads = [threading.Thread(target=self.worker, args=(n,)) for n in range(LOAD_THREADS)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_sigkill_and_restart_under_load_loses_no_audited_token_and_half_writes_nothing(instances):
    a, b = instances
    auth = approved_client(a)
    with Load(instances, auth) as load:
        started_at = time.monotonic()
        until(lambda: (load.answered(a, started_at, (201,)) and len(load.answered(a, started_at, (200,))) >= 5
                       and len(load.answered(b, started_at)) >= 5),
              "both instances to serve the load, a registrations too", timeout=30)
        killed_at = time.monotonic()
        a.kill()
        until(lambda: load.answered(a, killed_at, (None,)) and len(load.answered(b, killed_at)) >= SURVIVOR_ANSWERS,
              f"the load to find a gone and b to answer {SURVIVOR_ANSWERS} requests", timeout=30)
        restarted_at = time.monotonic()
        a.start()
        back_at = time.monotonic()
        until(lambda: load.answered(a, back_at, (200,)), "the restarted a to issue tokens", timeout=30)

    answers = load.answers
    assert not [x for x in answers if x[2] is not None and x[2] >= 500], "a 5xx was answered"
    during = [x for x in answers if killed_at < x[0] < restarted_at and x[1] == b.url]
    assert during and all(x[2] in (200, 201) for x in during), "the survivor stopped serving"
    assert [x for x in answers if x[0] > back_at and x[1] == a.url and x[2] == 200], "a did not come back"

    tokens = [x[3]["access_token"] for x in answers if x[2] == 200]
    registered = [x[3]["client_id"] for x in answers if x[2] == 201]
    assert tokens and registered
    jtis = {pyjwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}

    app = admin(a)
    with app.app_context():
        audited = set(db.session.execute(select(AuditEvent.jti).where(AuditEvent.jti.is_not(None))).scalars())
        stored = set(db.session.execute(select(IssuedToken.jti)).scalars())
        assert jtis <= audited and jtis <= stored
        assert stored <= audited  # nothing issued without its audit event
        clients = set(db.session.execute(select(Client.client_id)).scalars())
        registrations = set(db.session.execute(select(AuditEvent.client_id)
                                               .where(AuditEvent.event_type == "client.registered")).scalars())
        assert set(registered) <= clients
        assert clients == registrations  # no client without its event, no event without its client
        # The two instances' sequencers seal one chain between them, the restarted one included.
        until(sealed, "the instances' sequencers to seal every event", timeout=15, every=0.2)
        assert audit.verify() == (count(AuditEvent), None, None)
        db.session.remove()
        db.engine.dispose()
