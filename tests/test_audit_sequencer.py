"""The sequencer seals what writers appended, and signs checkpoints that a rewrite of the whole
trail cannot match."""
import json

import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select, text

from app import audit
from app.audit import sequencer, trail
from app.extensions import db
from app.models import AuditCheckpoint, AuditEvent
from app.support import clock

from .factories import count


def write(n, event_type="test.event"):
    for i in range(n):
        audit.record(event_type, "system", data={"i": i})
        db.session.commit()


def test_writers_append_unsealed_and_the_sequencer_seals_in_order(app):
    write(3)
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    assert events and all(e.seq is None and e.hash is None for e in events)
    assert trail.unsealed()[0] == len(events)
    assert sequencer.seal_all() == len(events)
    db.session.expire_all()
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for previous, event in zip(events, events[1:]):
        assert event.prev_hash == previous.hash
    assert trail.head_row() == (len(events), events[-1].hash)
    assert trail.unsealed()[0] == 0 and audit.verify() == (len(events), None, None)
    assert sequencer.seal_all() == 0  # nothing twice


def test_sealing_goes_in_batches_that_continue_the_chain(app):
    write(5)
    total = trail.unsealed()[0]
    assert sequencer.seal(limit=2) == 2 and sequencer.seal(limit=2) == 2
    assert sequencer.seal_all() == total - 4
    assert audit.verify() == (total, None, None)


def test_a_rolled_back_event_is_never_sealed(app):
    write(1)
    audit.record("test.dropped", "system")
    db.session.rollback()
    sequencer.seal_all()
    assert db.session.execute(select(AuditEvent).where(AuditEvent.event_type == "test.dropped")).first() is None
    assert audit.verify()[1] is None


def test_a_checkpoint_is_signed_by_the_issuer_and_states_the_head(app):
    write(2)
    sequencer.seal_all(checkpoint=True)
    latest = sequencer.latest()
    head = trail.head_row()
    assert (latest["seq"], latest["hash"]) == tuple(head)
    # Verifiable by anyone with the JWKS, with an independent reading of the JWS.
    keys = app.extensions["ostiary.keys"].jwks()
    header = pyjwt.get_unverified_header(latest["checkpoint"])
    assert header["typ"] == "audit-checkpoint+jwt"
    claims = pyjwt.decode(latest["checkpoint"], pyjwt.PyJWKSet.from_dict(keys)[header["kid"]].key,
                          algorithms=["ES256"])
    assert claims["audit_seq"] == head.seq and claims["audit_hash"] == head.hash
    assert sequencer.read_checkpoint(latest["checkpoint"]) == {"seq": head.seq, "hash": head.hash}


def test_a_checkpoint_asked_for_covers_every_batch_sealed(app):
    """``ostiary audit checkpoint`` seals first: with more than one batch waiting, the
    checkpoint it prints states the head after the last batch, not the first."""
    write(sequencer.BATCH + 5)
    assert sequencer.seal_all(checkpoint=True) > sequencer.BATCH
    assert sequencer.latest()["seq"] == trail.head_row().seq


def test_checkpoints_are_signed_at_most_once_an_interval_unless_asked(app):
    write(1)
    sequencer.seal_all()
    first = count(AuditCheckpoint)
    assert first == 1  # the first sealing signs one
    write(1)
    sequencer.seal_all()
    assert count(AuditCheckpoint) == 1
    clock.advance(app.config["AUDIT_CHECKPOINT_SECONDS"])
    sequencer.seal_all()  # nothing new to seal, but the head has no checkpoint yet: now due
    assert count(AuditCheckpoint) == 2
    assert sequencer.latest()["seq"] == trail.head_row().seq


def _rewrite_whole_trail(reason):
    """What someone with the database alone can do: change an event, then recompute every
    hash after it and the head, so that the chain by itself is consistent again."""
    db.session.execute(text("UPDATE audit_event SET reason = :r WHERE seq = 1"), {"r": reason})
    prev = trail.GENESIS
    for event in db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
        event.prev_hash, event.hash = prev, trail.event_hash(event, prev)
        prev = event.hash
    sealed = count(AuditEvent, AuditEvent.seq.is_not(None))
    db.session.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": sealed, "h": prev})
    db.session.commit()


def test_a_rewritten_trail_passes_alone_but_not_against_a_kept_checkpoint(app):
    write(3)
    sequencer.seal_all(checkpoint=True)
    kept = sequencer.read_checkpoint(sequencer.latest()["checkpoint"])
    _rewrite_whole_trail("rewritten")
    assert audit.verify()[1] is None  # the chain alone cannot tell
    count, broken, why = audit.verify(kept)
    assert broken == kept["seq"] and "rewritten" in why


def test_a_truncated_trail_fails_against_a_kept_checkpoint(app):
    write(4)
    sequencer.seal_all(checkpoint=True)
    kept = sequencer.read_checkpoint(sequencer.latest()["checkpoint"])
    last = kept["seq"]
    db.session.execute(text("DELETE FROM audit_event WHERE seq >= :s"), {"s": last - 1})
    before = db.session.execute(select(AuditEvent.hash).where(AuditEvent.seq == last - 2)).scalar_one()
    db.session.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": last - 2, "h": before})
    db.session.commit()
    assert audit.verify()[1] is None
    count, broken, why = audit.verify(kept)
    assert count == last - 2 and "truncated" in why


@pytest.mark.parametrize("forge", ["foreign key", "access token typ", "other issuer", "no seq"])
def test_a_checkpoint_not_signed_by_this_issuer_is_refused(app, forge):
    write(1)
    sequencer.seal_all(checkpoint=True)
    kid, alg, key = app.extensions["ostiary.keys"].signer()
    claims = {"iss": app.config["ISSUER"], "iat": int(clock.timestamp()), "audit_seq": 1, "audit_hash": "0" * 64}
    header = {"typ": "audit-checkpoint+jwt", "alg": alg, "kid": kid}
    if forge == "foreign key":
        key = ECKey.generate_key("P-256", private=True)
    elif forge == "access token typ":
        header["typ"] = "at+jwt"
    elif forge == "other issuer":
        claims["iss"] = "https://elsewhere.example"
    else:
        del claims["audit_seq"]
    with pytest.raises(sequencer.CheckpointError):
        sequencer.read_checkpoint(jwt.encode(header, claims, key, algorithms=[alg]))


def test_a_key_row_added_with_the_database_alone_verifies_no_checkpoint(app):
    """The default keys are those the key-encryption key opens: a public key inserted by
    someone without it does not make their checkpoint valid."""
    from app.models import SigningKey
    key = ECKey.generate_key("P-256", private=True)
    db.session.add(SigningKey(kid="forged", alg="ES256", state="retired", public_jwk=key.as_dict(private=False),
                              private_encrypted=b"not encrypted with the KEK", created_at=clock.now()))
    db.session.commit()
    forged = jwt.encode({"typ": "audit-checkpoint+jwt", "alg": "ES256", "kid": "forged"},
                        {"iss": app.config["ISSUER"], "audit_seq": 1, "audit_hash": "0" * 64}, key,
                        algorithms=["ES256"])
    with pytest.raises(sequencer.CheckpointError):
        sequencer.read_checkpoint(forged)


def test_cli_checkpoint_then_verify_against_it(runner, tmp_path, app):
    write(2)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    kept = tmp_path / "checkpoint.json"
    kept.write_text(result.stdout)
    assert json.loads(result.stdout)["seq"] == trail.head_row().seq
    result = runner.invoke(args=["audit", "verify", "--checkpoint", str(kept)])
    assert result.exit_code == 0, result.output
    assert f"consistent with checkpoint {trail.head_row().seq}" in result.output
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(app.extensions["ostiary.keys"].jwks()))
    result = runner.invoke(args=["audit", "verify", "--checkpoint", str(kept), "--jwks", str(jwks)])
    assert result.exit_code == 0, result.output
    _rewrite_whole_trail("rewritten")
    result = runner.invoke(args=["audit", "verify", "--checkpoint", str(kept)])
    assert result.exit_code == 1 and "BROKEN" in result.output and "rewritten" in result.output


def test_cli_verify_refuses_a_checkpoint_that_is_not_one(runner, tmp_path):
    write(1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"seq": 1}')
    result = runner.invoke(args=["audit", "verify", "--checkpoint", str(bad)])
    assert result.exit_code == 1 and "REFUSED" in result.output


def test_cli_verify_names_events_waiting_for_the_sequencer(runner):
    write(2)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "wait for the sequencer" in result.output
    result = runner.invoke(args=["audit", "seal"])
    assert result.exit_code == 0 and "sealed" in result.output
    assert "wait for the sequencer" not in runner.invoke(args=["audit", "verify"]).output
