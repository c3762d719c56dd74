"""`ostiary audit verify|export`, and the chain under many concurrent writers."""
import json
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app import audit
from app.audit import sequencer
from app.extensions import db
from app.models import AuditEvent
from app.models.client import CLIENT_ID_MAX
from app.support import clock

from .factories import count, events
from .servers import ROOT, TEST_SECRETS


def write(event_type="test.event", actor="system", **kwargs):
    audit.record(event_type, actor, **kwargs)
    db.session.commit()
    sequencer.seal_all()


def test_verify_reports_an_intact_trail(runner):
    write()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "intact: " in result.output and "last hash " in result.output


@pytest.mark.parametrize("tamper, why", [
    ("UPDATE audit_event SET actor = 'admin:mallory' WHERE seq = :s", "edited"),
    ("DELETE FROM audit_event WHERE seq = :s", "missing"),
    ("UPDATE audit_event SET prev_hash = hash WHERE seq = :s", "prev_hash"),
])
def test_verify_exits_non_zero_and_names_the_first_broken_event(runner, tamper, why):
    for i in range(4):
        write(data={"i": i})
    target = db.session.execute(select(func.max(AuditEvent.seq))).scalar_one() - 1
    db.session.execute(text(tamper), {"s": target})
    db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at event {target}:" in result.output and why in result.output


def test_export_filters_by_client_actor_type_and_since(runner):
    write("client.registered", "client:a", client_id="a")
    write("client.approved", "admin:alice", client_id="a")
    write("client.registered", "client:b", client_id="b")
    clock.advance(3600)
    later = clock.now()
    write("client.suspended", "admin:alice", client_id="b")

    def exported(*args):
        result = runner.invoke(args=["audit", "export", *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    assert {e["event_type"] for e in exported("--client", "a")} == {"client.registered", "client.approved"}
    assert [e["client_id"] for e in exported("--actor", "admin:alice")] == ["a", "b"]
    assert [e["client_id"] for e in exported("--type", "client.registered")] == ["a", "b"]
    since = (later - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert [e["event_type"] for e in exported("--since", since)] == ["client.suspended"]
    everything = exported()
    assert all(e["hash"] and e["prev_hash"] for e in everything)
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)


WRITER = """
import sys
from app import audit, create_app
from app.extensions import db
app = create_app({"DATABASE_URL": sys.argv[1], "INSTANCE_PATH": sys.argv[2],
                  "SECRET_KEY": sys.argv[3], "KEY_ENCRYPTION_KEY": sys.argv[4]}, check=False)
with app.app_context():
    for i in range(int(sys.argv[5])):
        audit.record("test.process", "system", data={"i": i})
        db.session.commit()
"""


def test_concurrent_threads_and_processes_keep_one_chain_without_gaps(app):
    """Writers append without a shared lock while two sequencers seal at the same time: every
    event ends in one chain, once, without gaps."""
    threads, per_thread, processes, per_process = 6, 20, 2, 20
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, app.config["INSTANCE_PATH"],
                               TEST_SECRETS["SECRET_KEY"], TEST_SECRETS["KEY_ENCRYPTION_KEY"],
                               str(per_process)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    errors = []

    def writer(n):
        with app.app_context():
            try:
                for i in range(per_thread):
                    # two events per transaction: both land together
                    audit.record("test.thread", "system", data={"t": n, "i": i})
                    audit.record("test.thread.pair", "system", data={"t": n, "i": i})
                    db.session.commit()
            except Exception as exc:  # surfaced below; a thread's exception would vanish
                errors.append(exc)
            finally:
                db.session.remove()

    writing = threading.Event()
    writing.set()

    def sealer():
        with app.app_context():
            try:
                while writing.is_set():
                    sequencer.seal(limit=7)
            except Exception as exc:
                errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    sealers = [threading.Thread(target=sealer) for _ in range(2)]
    for t in workers + sealers:
        t.start()
    for t in workers:
        t.join()
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
    writing.clear()
    for t in sealers:
        t.join()
    assert errors == []
    sequencer.seal_all()
    db.session.expire_all()
    verified, broken, why = audit.verify()
    assert (broken, why) == (None, None)
    written = count(AuditEvent, AuditEvent.event_type.like("test.%"))
    assert written == threads * per_thread * 2 + processes * per_process
    seqs = db.session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
    assert seqs == list(range(1, verified + 1))  # every event sealed (no NULL), once


def test_values_from_refused_requests_are_stored_whatever_they_hold(app):
    """A NUL byte (which PostgreSQL text refuses) or an over-long client_id must not fail the write."""
    write("token.refused", "client:\x00" + "x" * 300, client_id="a\x00b" + "y" * CLIENT_ID_MAX, reason="r\x00")
    [event] = events("token.refused")
    assert event.client_id.startswith("a\ufffdb") and len(event.client_id) == CLIENT_ID_MAX
    assert event.client_id.endswith("\u2026") and event.reason == "r\ufffd"
    assert audit.verify()[1] is None
