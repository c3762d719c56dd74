"""The ASGI front (app.http.serving) in-process, on an event loop as gunicorn's asgi worker runs it:
what runs inline and what on threads, the body limit, a client that goes away, and the greenlet
bridge (app.support.inline). Its group commit is tested with the threaded one, in test_issuance."""
import asyncio
import ipaddress
import json
import sqlite3
import threading

import pytest
import responses
from sqlalchemy import select

from app.extensions import db
from app.http.serving import Server
from app.models import AuditEvent, IssuedToken
from app.registration import lifecycle
from app.support import clock, fetch, inline

from .asgi_client import at_once, call, form_post, request
from .factories import count, events, make_client, new_key, public_jwks
from .token_actions import ISSUER


@pytest.fixture
def server(app):
    return Server(app, threads=2)


def test_an_inline_token_is_audited_with_the_clients_address(server, new_agent):
    agent = new_agent(auth_method="client_secret_basic", post=form_post)
    answer, = at_once(server, [agent.token()])
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    [event] = events("token.issued")
    assert event.address == "192.0.2.7" and event.jti == issued_jti(agent.made.client_id)


def issued_jti(client_id):
    return db.session.scalars(select(IssuedToken.jti).filter_by(client_id=client_id)).one()


def test_reads_and_token_requests_run_inline_and_the_rest_on_threads(server):
    threaded, pool = [], server.threaded

    async def recording(scope, receive, send):
        threaded.append((scope["method"], scope["path"]))
        await pool(scope, receive, send)

    server.threaded = recording
    discovery, jwks, introspection, other_method, revocation = at_once(server, [
        dict(method="GET", path="/.well-known/oauth-authorization-server"),
        dict(method="GET", path="/jwks.json"), form_post("/introspect", {"token": "x"}, {}),
        dict(method="GET", path="/token"), form_post("/revoke", {"token": "x"}, {})])
    assert discovery.status_code == 200 and discovery.get_json()["issuer"] == ISSUER
    assert jwks.status_code == 200 and jwks.get_json()["keys"]
    assert introspection.status_code == 401 and introspection.get_json()["error"] == "invalid_client"
    assert other_method.status_code == 405
    assert set(other_method.headers["allow"].split(", ")) == {"OPTIONS", "POST"}
    assert revocation.status_code == 401 and revocation.get_json()["error"] == "invalid_client"
    assert sorted(threaded) == [("GET", "/token"), ("POST", "/revoke")]


def test_a_token_request_over_the_size_limit_is_413_and_read_no_further(server, app, new_agent):
    limit = app.config["MAX_BODY_BYTES"]
    headers = new_agent(auth_method="client_secret_basic", post=form_post).token()["headers"]
    chunks = [b"grant_type=client_credentials&scope=" + b"r" * limit, b"r" * 100, b"r" * 100]
    scope, receive, received = request("POST", "/token", headers=headers, chunks=chunks)
    sent = []

    async def send(message):
        sent.append(message)
    db.session.remove()
    asyncio.run(server(scope, receive, send))
    assert sent[0]["status"] == 413 and len(received) == 1
    assert json.loads(sent[1]["body"])["error"] == "invalid_request"
    assert count(IssuedToken) == 0


def test_a_client_gone_mid_body_gets_nothing_and_nothing_is_written(server, new_agent):
    headers = new_agent(auth_method="client_secret_basic", post=form_post).token()["headers"]
    answer, = at_once(server, [dict(method="POST", path="/token", headers=headers,
                                    chunks=[b"grant_type=client_", b""], disconnect=True)])
    assert answer is None
    assert count(IssuedToken) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_introspection_reads_without_waiting_for_the_write_lock(server, backend, new_agent):
    """The token's row is read on the driver in autocommit: on SQLite, introspection answers
    while another connection holds the write lock (through the ORM it would begin with
    ``BEGIN IMMEDIATE`` and wait for it on the loop's own thread)."""
    agent = new_agent(auth_method="client_secret_basic", post=form_post)
    issued, = at_once(server, [agent.token()])
    writer = sqlite3.connect(db.engine.url.database, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        answer, = at_once(server, [agent.introspect(issued.get_json()["access_token"])])
    finally:
        writer.rollback()
        writer.close()
    assert answer.status_code == 200 and answer.get_json()["active"] is True


@pytest.mark.parametrize("backend", ["sqlite"])
def test_expiring_a_client_at_request_time_does_not_stop_the_loop(server, backend, monkeypatch, new_agent):
    """The expiry is an ORM write, made on a thread: while it waits for SQLite's write lock
    (held here by another connection), the loop answers a request sent after it."""
    made = make_client()
    clock.advance(91 * 24 * 3600)  # past the approval
    expiring, expire_due = threading.Event(), lifecycle.expire_due

    def signalling(**kwargs):
        expiring.set()
        return expire_due(**kwargs)

    monkeypatch.setattr(lifecycle, "expire_due", signalling)
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first
    writer = sqlite3.connect(db.engine.url.database, timeout=0)
    writer.execute("BEGIN IMMEDIATE")

    async def main():
        expired = asyncio.ensure_future(call(server, **new_agent(made, post=form_post).token()))
        await asyncio.get_running_loop().run_in_executor(None, expiring.wait, 10)
        jwks = await call(server, method="GET", path="/jwks.json")
        writer.rollback()  # the expiry may go on
        return await expired, jwks

    try:
        expired, jwks = asyncio.run(main())
    finally:
        writer.close()
    assert jwks.status_code == 200
    assert expired.get_json()["error"] == "unauthorized_client"
    assert count(AuditEvent, event_type="client.expired", client_id=made.client_id) == 1


@responses.activate
def test_a_slow_jwks_uri_does_not_stop_the_loop(server, monkeypatch, new_agent):
    """A client's keys are fetched on a thread: while the fetch waits, the loop answers a
    token request sent after it."""
    fetch.clear_cache()
    monkeypatch.setattr(fetch, "_resolve", lambda host, port: ipaddress.ip_address("93.184.216.34"))
    key, fetching, answered, waited = new_key("remote-1"), threading.Event(), threading.Event(), []

    def slow_jwks(_request):
        fetching.set()
        waited.append(answered.wait(10))  # False: nothing was answered while this fetch waited
        return 200, {"Content-Type": "application/json"}, json.dumps(public_jwks(key))

    responses.add_callback(responses.GET, "https://93.184.216.34:443/jwks.json", callback=slow_jwks)
    remote = make_client(jwks_uri="https://agent.example.com/jwks.json")
    remote.private_key = key
    other = make_client(auth_method="client_secret_basic")

    async def main():
        slow = asyncio.ensure_future(call(server, **new_agent(remote, post=form_post).token()))
        await asyncio.get_running_loop().run_in_executor(None, fetching.wait, 10)
        fast = await call(server, **new_agent(other, post=form_post).token())
        answered.set()
        return await slow, fast

    db.session.remove()
    slow, fast = asyncio.run(main())
    fetch.clear_cache()
    assert waited == [True]
    assert slow.status_code == 200 and fast.status_code == 200


def test_inline_code_waits_for_awaitables_and_gets_their_exceptions():
    async def fails():
        await asyncio.sleep(0)
        raise LookupError("from the loop")

    def blocking_style(x):
        assert inline.running()
        doubled = inline.wait_for(asyncio.sleep(0, result=2 * x))
        try:
            inline.wait_for(fails())
        except LookupError as exc:
            return doubled, str(exc)

    assert not inline.running()
    assert asyncio.run(inline.run(blocking_style, 21)) == (42, "from the loop")


def test_inline_reads_keep_one_connection_and_replace_one_that_failed(app):
    from sqlalchemy import text

    from app.db import dbapi
    from app.oauth.clients import LOAD
    made = make_client(auth_method="client_secret_basic")
    db.session.remove()

    def read():
        assert dbapi.fetch_one(LOAD, {"client_id": made.client_id})[0] == made.client_id
        return dbapi._loop_readers[db.engine].pooled

    def reads():
        with app.app_context():  # a greenlet starts with a context of its own
            held = read()
            assert read() is held
            with pytest.raises(Exception, match="no_such_table"):
                dbapi.fetch_one(text("SELECT * FROM no_such_table"), {})
            return held, read()

    failed, replacement = asyncio.run(inline.run(reads))
    assert replacement is not failed and not failed.is_valid and replacement.is_valid


@pytest.mark.parametrize("limit", ["IDLE_SECONDS", "RECYCLE_SECONDS"])
def test_the_loops_connection_is_replaced_when_idle_or_old(app, monkeypatch, limit):
    from app.db import dbapi
    from app.oauth.clients import LOAD
    made = make_client(auth_method="client_secret_basic")
    db.session.remove()

    def read():
        with app.app_context():
            assert dbapi.fetch_one(LOAD, {"client_id": made.client_id})[0] == made.client_id
            return dbapi._loop_readers[db.engine].pooled

    first = asyncio.run(inline.run(read))
    raw = first.driver_connection
    monkeypatch.setattr(dbapi, limit, -1)
    assert asyncio.run(inline.run(read)) is not first
    if limit == "IDLE_SECONDS":  # possibly dropped while unused: closed, never reused
        with pytest.raises(Exception, match="closed"):
            raw.execute("SELECT 1")
    else:  # handed back to the pool, which decides whether to recycle it
        assert first.dbapi_connection is None and raw.execute("SELECT 1").fetchone()[0] == 1


def test_the_loops_connection_goes_back_to_the_pool_as_the_pool_handed_it_out(app):
    from app.db import dbapi
    from app.oauth.clients import LOAD
    made = make_client(auth_method="client_secret_basic")
    db.session.remove()

    def read():
        with app.app_context():
            dbapi.fetch_one(LOAD, {"client_id": made.client_id})
            return dbapi._loop_readers[db.engine]

    reader = asyncio.run(inline.run(read))
    raw, checked_in = reader.pooled.driver_connection, db.engine.pool.checkedin()
    reader.release()
    assert reader.pooled is None and db.engine.pool.checkedin() == checked_in + 1
    if db.engine.dialect.name == "postgresql":
        assert raw.autocommit is False  # as the ORM's sessions expect it
