"""The sequencer of a real server process: events committed by a process that was SIGKILLed
before it sealed them are sealed after the restart, and none is lost."""
from __future__ import annotations

import pytest
import requests

from app import audit
from app.audit import trail
from app.extensions import db
from app.models import AuditEvent
from tests.e2e.test_faults import admin, approved_client, sealed
from tests.factories import count
from tests.servers import Server, free_port, server_env
from tests.waiting import until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_events_committed_before_a_sigkill_are_sealed_after_the_restart(tmp_path, new_pg_database, backend):
    port = free_port()
    database = new_pg_database() if backend == "postgresql" else f"sqlite:///{tmp_path / 'ostiary.db'}"
    # First a server whose sequencer would not run for an hour: what it commits stays unsealed.
    server = Server(url=f"http://127.0.0.1:{port}", log=tmp_path / "server.log",
                    env=server_env(tmp_path, port, database, AUDIT_SEAL_SECONDS=3600))
    assert server.cli("init").returncode == 0
    auth = approved_client(server)
    server.start()
    try:
        tokens = []
        for _ in range(20):
            answer = requests.post(server.url + "/token", headers=auth, timeout=10,
                                   data={"grant_type": "client_credentials", "scope": "read"})
            assert answer.status_code == 200, answer.text
            tokens.append(answer.json()["access_token"])
        app = admin(server)
        with app.app_context():
            waiting, _ = trail.unsealed()
            issued = count(AuditEvent, event_type="token.issued")
            assert issued == 20 and waiting >= 20
            db.session.remove()
        server.kill()

        server.env["OSTIARY_AUDIT_SEAL_SECONDS"] = "0.2"
        server.start()  # no request needed: each worker's sequencer starts with the worker
        with app.app_context():
            until(sealed, "the restarted server's sequencers to seal what the killed one left", timeout=15,
                  every=0.2)
            events = count(AuditEvent)
            assert trail.unsealed()[0] == 0
            assert audit.verify() == (events, None, None)
            assert count(AuditEvent, AuditEvent.seq.is_not(None), event_type="token.issued") == 20
            db.session.remove()
            db.engine.dispose()
    finally:
        server.stop()
