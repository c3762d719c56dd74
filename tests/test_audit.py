import json
from io import StringIO

import pytest
from sqlalchemy import text

from app import audit
from app.audit import sequencer
from app.extensions import db
from app.models import AuditEvent


def write_events(n):
    for i in range(n):
        audit.record("test.event", "system", client_id=f"c{i}", data={"i": i})
        db.session.commit()
    sequencer.seal_all()


def test_events_are_chained_in_order(app):
    write_events(3)
    events = db.session.query(AuditEvent).order_by(AuditEvent.seq).all()
    for previous, event in zip(events, events[1:]):
        assert event.seq == previous.seq + 1 and event.prev_hash == previous.hash
    assert audit.verify()[1:] == (None, None)


def test_an_event_and_its_change_share_one_transaction(app):
    audit.record("test.event", "system")
    db.session.rollback()
    assert db.session.query(AuditEvent).filter_by(event_type="test.event").count() == 0
    assert audit.verify()[1] is None


@pytest.mark.parametrize("end", ["rollback", "close"])
def test_an_event_of_a_transaction_that_ended_unwritten_is_never_written(app, end):
    db.session.remove()  # a new session: recording is the first thing it does
    audit.record("test.dropped", "system")
    getattr(db.session, end)()
    audit.record("test.kept", "system")
    db.session.commit()
    assert [e.event_type for e in db.session.query(AuditEvent).filter(AuditEvent.event_type.like("test.%"))] \
        == ["test.kept"]
    assert audit.verify()[1] is None


def test_edit_deletion_and_truncation_are_detected(app):
    write_events(5)
    count, broken, _ = audit.verify()
    assert broken is None
    target = count - 2  # an event in the middle of the trail
    db.session.execute(text("UPDATE audit_event SET reason = 'edited' WHERE seq = :s"), {"s": target})
    db.session.commit()
    assert audit.verify()[1] == target
    db.session.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": target})
    db.session.commit()
    assert audit.verify()[1] == target
    db.session.execute(text("DELETE FROM audit_event WHERE seq >= :s"), {"s": target})
    db.session.commit()
    assert audit.verify()[1] == target  # the head still remembers the removed tail


def test_export_writes_json_lines(app):
    write_events(2)
    out = StringIO()
    n = audit.export_jsonl(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(lines) >= 2
    assert lines[-1]["event_type"] == "test.event" and lines[-1]["data"] == {"i": 1}
