"""The group commit (app.oauth.group_commit): concurrent token requests of one process, issued
or refused, share a transaction, each keeps its own outcome, and a failed group writes nothing; whether
the requests come from threads (a threaded WSGI server) or run inline on an event loop (the
ASGI front that gunicorn serves)."""
import dataclasses
import threading

import pytest

from app import audit
from app.audit import sequencer
from app.extensions import db
from app.http.serving import Server
from app.models import AuditEvent, IssuedToken
from app.oauth import group_commit
from app.registration import lifecycle

from . import asgi_client
from .factories import ACTOR, count, events, make_client
from .token_actions import ISSUER, assertion
from .waiting import until


@pytest.fixture
def in_flight():
    """How many requests ``at_once`` sent together last."""
    return {"requests": 0}


@pytest.fixture
def groups(monkeypatch, app, in_flight):
    """The size of every group written. The first group's write waits until every other request
    sent with it has queued (for the next group), whatever the machine's speed; ``clear()`` the
    sizes to hold the next first group too."""
    sizes, write, late = [], group_commit._write_group, []
    commits = app.extensions["ostiary.group_commit"]

    def queued():  # behind a threaded leader, or joined on the event loop
        return len(commits._queue) + len(commits._waiting)

    def recording(group):
        if not sizes:
            try:
                until(lambda: len(group) + queued() >= in_flight["requests"],
                      "the requests sent with the first group's to queue for the next")
            except AssertionError as exc:  # reported by the fixture: raised here, it would fail the group
                late.append(exc)
        sizes.append(len(group))
        return write(group)

    monkeypatch.setattr(group_commit, "_write_group", recording)
    yield sizes
    assert not late, late


@pytest.fixture(params=["threads", "event loop"])
def at_once(request, app, in_flight):
    """Send token requests, (path, form, headers) each, all at once: each from its own thread
    through the WSGI app, or all on one event loop through the ASGI front."""
    server = Server(app, threads=2) if request.param == "event loop" else None

    def send(sent):
        in_flight["requests"] = len(sent)
        if request.param == "threads":
            return concurrently(app, [lambda http, r=r: http.post(r[0], data=r[1], headers=r[2]) for r in sent])
        return asgi_client.at_once(server, [asgi_client.form_post(*r) for r in sent])

    return send


def concurrently(app, requests):
    """Run each ``request(http)`` in its own thread with its own test client, all at once."""
    db.session.remove()  # the test's own transaction (SQLite: its write lock) ends first
    start, answers = threading.Barrier(len(requests)), [None] * len(requests)

    def run(i, request):
        http = app.test_client()
        start.wait()
        answers[i] = request(http)

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def written_down(path, data, headers):
    """An agent's requests, only written down as (path, form, headers), for ``at_once`` to send."""
    return path, data, headers


def test_concurrent_token_requests_share_a_transaction_and_each_gets_its_token(at_once, groups, new_agent):
    made = make_client(auth_method="client_secret_basic")
    answers = at_once([new_agent(made, post=written_down).token() for _ in range(6)])
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.get_json()["access_token"] for a in answers}) == 6
    assert sum(groups) == 6 and max(groups) > 1, groups
    assert count(IssuedToken, client_id=made.client_id) == 6
    assert count(AuditEvent, event_type="token.issued", client_id=made.client_id) == 6
    sequencer.seal_all()
    assert audit.verify()[1] is None  # the chain runs through every group in order


def test_a_replayed_assertion_in_the_same_group_is_refused_and_the_others_are_not(at_once, groups, new_agent):
    made = make_client()
    copied = {"grant_type": "client_credentials", "client_assertion": assertion(made, ISSUER),
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    agent = new_agent(made, post=written_down)
    answers = at_once([agent.token() for _ in range(3)] + [("/token", copied, {})] * 3)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 200, 200, 400, 400], [a.get_json() for a in answers]
    refused = [a.get_json() for a in answers if a.status_code == 400]
    assert all(r["error"] == "invalid_client" and "already used" in r["error_description"] for r in refused)
    assert count(IssuedToken, client_id=made.client_id) == 4
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 2
    sequencer.seal_all()
    assert audit.verify()[1] is None


def test_concurrent_refusals_share_a_transaction_and_each_is_recorded(at_once, groups, new_agent):
    made = make_client(auth_method="client_secret_basic")
    wrong = new_agent(dataclasses.replace(made, client_secret="wrong"), post=written_down)
    answers = at_once([wrong.token() for _ in range(6)])
    assert [(a.status_code, a.get_json()["error"]) for a in answers] == [(401, "invalid_client")] * 6
    assert sum(groups) == 6 and max(groups) > 1, groups
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 6
    sequencer.seal_all()
    assert audit.verify()[1] is None


def test_copies_of_a_refused_assertion_are_refused_as_replays(at_once, groups):
    """The first copy's refusal spends the jti; the copies' refusals are the replay's."""
    made = make_client()
    copied = {"grant_type": "client_credentials", "scope": "write", "client_assertion": assertion(made, ISSUER),
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    answers = at_once([("/token", copied, {})] * 3)
    assert sorted(a.get_json()["error"] for a in answers) == ["invalid_client", "invalid_client", "invalid_scope"]
    assert sorted((e.data["error"], "already used" in e.reason) for e in events("token.refused")) == [
        ("invalid_client", True), ("invalid_client", True), ("invalid_scope", False)]
    sequencer.seal_all()
    assert audit.verify()[1] is None


def test_a_failed_group_fails_each_of_its_requests_and_writes_nothing(at_once, monkeypatch, new_agent):
    made = make_client(auth_method="client_secret_basic")

    def broken(connection, events):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(audit, "append", broken)
    answers = at_once([new_agent(made, post=written_down).token() for _ in range(3)])
    for answer in answers:
        assert answer.status_code == 500
        assert answer.get_json() == {"error": "server_error",
                                     "error_description": "internal error; nothing was changed"}
    assert count(IssuedToken, client_id=made.client_id) == 0
    assert count(AuditEvent, event_type="token.issued") == 0


def test_expired_assertion_jtis_are_swept_inside_the_group(app, monkeypatch, new_agent):
    """The sweep runs now and then (1 in PURGE_ONE_IN spends); here on every one."""
    from datetime import timedelta

    from app.models import AssertionJti
    from app.oauth import client_auth
    from app.support import clock
    made = make_client()
    db.session.add(AssertionJti(client_id=made.client_id, jti="old", expires_at=clock.now() - timedelta(seconds=1)))
    db.session.commit()
    monkeypatch.setattr(client_auth, "PURGE_ONE_IN", 1)
    db.session.remove()
    assert new_agent(made).token().status_code == 200
    assert count(AssertionJti, jti="old") == 0
    assert count(AssertionJti, client_id=made.client_id) == 1  # the assertion just spent


def test_a_token_decided_on_a_stale_cached_record_leaves_the_rest_of_its_group_alone(at_once, groups, new_agent):
    """A client suspended around this process's cache (as by another instance), its record
    cached: in the group its token is not written, the other client's are; its request is
    answered again from a fresh read, and refused."""
    suspended, other = (new_agent(auth_method="client_secret_basic", post=written_down) for _ in range(2))
    assert [a.status_code for a in at_once([suspended.token(), other.token()])] == [200, 200]
    lifecycle.suspend(suspended.made.client_id, reason="compromised", actor=ACTOR)
    groups.clear()
    answers = at_once([suspended.token()] + [other.token() for _ in range(3)])
    assert [a.status_code for a in answers] == [400, 200, 200, 200], [a.get_json() for a in answers]
    assert answers[0].get_json()["error"] == "unauthorized_client"
    assert max(groups) > 1, groups
    assert count(IssuedToken, client_id=suspended.made.client_id) == 1
    assert count(IssuedToken, client_id=other.made.client_id) == 4
    sequencer.seal_all()
    assert audit.verify()[1] is None
