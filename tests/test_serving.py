"""The ASGI front (app.serving) in-process, on an event loop as gunicorn's asgi worker runs it:
token requests run inline and the ones in flight share a group commit; the rest go to Flask."""
import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app import audit, inline
from app.extensions import db
from app.models import AuditEvent, IssuedToken
from app.oauth import issuance
from app.serving import Server

from .factories import make_client
from .token_actions import Agent, assertion

ISSUER = "http://127.0.0.1:5000"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Answer:
    status_code: int
    headers: dict
    body: bytes

    def get_json(self):
        return json.loads(self.body)


def request(method, path, *, body=b"", headers=None, chunks=None, disconnect=False):
    """An ASGI HTTP request: its scope, and a receive() that gives the body (in ``chunks``)."""
    headers = {"host": "127.0.0.1:5000", **(headers or {})}
    if chunks is None:
        chunks = [body]
        headers.setdefault("content-length", str(len(body)))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 5000), "client": ("192.0.2.7", 40000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    if disconnect:
        messages[-1:] = [{"type": "http.disconnect"}]
    received = []

    async def receive():
        received.append(1)
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # nothing more: as a client that stays quiet
    return scope, receive, received


async def call(server, method, path, **options) -> Answer | None:
    scope, receive, _ = request(method, path, **options)
    sent = []

    async def send(message):
        sent.append(message)
    await server(scope, receive, send)
    if not sent:
        return None
    return Answer(sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]},
                  b"".join(m.get("body", b"") for m in sent[1:]))


def form_post(path, data, headers):
    """What Agent.post would send, as the arguments of ``call()``."""
    return dict(method="POST", path=path, body=urlencode(data).encode(),
                headers={**headers, "content-type": FORM})


def agent(made):
    return Agent(made, ISSUER, form_post)


def at_once(server, requests):
    """Send every request (``call()`` keyword arguments) at once on one event loop."""
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first

    async def main():
        return await asyncio.gather(*(call(server, **r) for r in requests))
    return asyncio.run(main())


@pytest.fixture
def server(app):
    return Server(app, threads=2)


@pytest.fixture
def groups(monkeypatch):
    sizes, write = [], issuance._write_group

    def recording(group):
        sizes.append(len(group))
        return write(group)

    monkeypatch.setattr(issuance, "_write_group", recording)
    return sizes


def count(model, **where):
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_token_requests_in_flight_share_a_group_commit_and_each_gets_its_token(server, groups):
    made = make_client(auth_method="client_secret_basic")
    answers = at_once(server, [agent(made).token() for _ in range(8)])
    assert [a.status_code for a in answers] == [200] * 8, [a.body for a in answers]
    assert len({a.get_json()["access_token"] for a in answers}) == 8
    assert sum(groups) == 8 and len(groups) < 8, groups
    assert count(IssuedToken, client_id=made.client_id) == 8
    events = db.session.scalars(select(AuditEvent).filter_by(event_type="token.issued")).all()
    assert len(events) == 8 and {e.address for e in events} == {"192.0.2.7"}
    assert audit.verify()[1] is None


def test_a_replayed_assertion_in_one_group_gets_one_token(server, groups):
    made = make_client()
    copied = assertion(made, ISSUER)
    replay = form_post("/token", {"grant_type": "client_credentials", "client_assertion": copied,
                                  "client_assertion_type":
                                      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, {})
    answers = at_once(server, [agent(made).token(), *[replay] * 3])
    assert sorted(a.status_code for a in answers) == [200, 200, 400, 400]
    refused = [a.get_json() for a in answers if a.status_code == 400]
    assert all(r["error"] == "invalid_client" and "already used" in r["error_description"] for r in refused)
    assert count(IssuedToken, client_id=made.client_id) == 2
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 2
    assert audit.verify()[1] is None


def test_a_failed_group_fails_each_of_its_requests_and_writes_nothing(server, monkeypatch):
    made = make_client(auth_method="client_secret_basic")

    def broken(connection, head, events):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(audit, "append_locked", broken)
    answers = at_once(server, [agent(made).token() for _ in range(3)])
    assert [a.status_code for a in answers] == [500] * 3
    assert {a.body for a in answers} == {json.dumps({
        "error": "server_error", "error_description": "internal error; nothing was changed"}).encode()}
    assert count(IssuedToken) == 0 and count(AuditEvent, event_type="token.issued") == 0


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


def test_a_token_request_over_the_size_limit_is_413_and_read_no_further(server, app):
    made = make_client(auth_method="client_secret_basic")
    limit = app.config["MAX_BODY_BYTES"]
    headers = agent(made).token()["headers"]
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


def test_a_client_gone_mid_body_gets_nothing_and_nothing_is_written(server):
    made = make_client(auth_method="client_secret_basic")
    headers = agent(made).token()["headers"]
    answer, = at_once(server, [dict(method="POST", path="/token", headers=headers,
                                    chunks=[b"grant_type=client_", b""], disconnect=True)])
    assert answer is None
    assert count(IssuedToken) == 0


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


def test_inline_reads_share_one_connection_and_one_that_failed_is_replaced(app):
    from sqlalchemy import text

    from app import dbapi
    from app.oauth.clients import LOAD
    made = make_client(auth_method="client_secret_basic")
    db.session.remove()

    def read():
        return dbapi.fetch_one(LOAD, {"client_id": made.client_id})[0]

    def reads():
        with app.app_context():  # a greenlet starts with a context of its own
            assert read() == made.client_id
            held = dbapi._loop_readers[db.engine][1]
            assert read() == made.client_id and dbapi._loop_readers[db.engine][1] is held
            with pytest.raises(Exception, match="no_such_table"):
                dbapi.fetch_one(text("SELECT * FROM no_such_table"), {})
            assert db.engine not in dbapi._loop_readers
            assert read() == made.client_id
            return held, dbapi._loop_readers[db.engine][1]

    failed, replacement = asyncio.run(inline.run(reads))
    assert replacement is not failed and not failed.is_valid
