"""Ostiary under gunicorn (config/gunicorn.conf.py) on SQLite or a fresh PostgreSQL database.

The benchmark's clients are made through the same service functions as every
other client (``register()`` then ``approve()``), in this process, against the
server's database with the server's secrets.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests
from joserfc.jwk import ECKey

from .servers import free_port
from .workloads import AUDIENCE, SCOPE, TOKEN_EXCHANGE, BenchClients

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The workload registers thousands of clients from one address in seconds;
# lift the per-address limits meant for the open internet.
BENCH_SETTINGS = {
    "REGISTRATION_RATE_LIMIT": "1000000 per second",
    "PENDING_CAP_PER_ADDRESS": 0,  # no cap
}
# RFC 8693 §2.1 / RFC 9396: one audience and one stated task, which the shipped policy allows.
EXCHANGE_EXTRA = {"audience": AUDIENCE, "authorization_details": json.dumps([{
    "type": "agent_task", "intent": "summarize-reports", "actions": ["read"],
    "locations": ["https://api.example.com/reports/2026"], "datatypes": ["report"],
    "sensitivity": "internal"}])}


@contextlib.contextmanager
def fresh_database(backend: str, workdir: Path, pg_admin_url: str):
    """A SQLite file in ``workdir`` or a new PostgreSQL database, dropped afterwards."""
    if backend == "sqlite":
        yield ""
        return
    name = f"ostiary_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(instance: Path, port: int, database_url: str, extra: dict, redis_url: str | None = None) -> dict:
    """``redis_url`` for gunicorn, whose several workers refuse per-process limit storage, as in
    production; without it (one process, in-process profiling) the limits are memory://."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
    env.update({
        "OSTIARY_RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "OSTIARY_RATELIMIT_KEY_PREFIX": f"ostiary-bench-{uuid.uuid4().hex[:10]}",
        "OSTIARY_SECRET_KEY": secrets.token_urlsafe(48),
        "OSTIARY_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(48),
        "OSTIARY_ISSUER": f"http://127.0.0.1:{port}",
        "OSTIARY_INSTANCE_PATH": str(instance),
        "OSTIARY_BIND": f"127.0.0.1:{port}",
        "OSTIARY_DATABASE_URL": database_url,
    })
    env.update({f"OSTIARY_{k}": str(v) for k, v in {**BENCH_SETTINGS, **extra}.items()})
    return env


@contextlib.contextmanager
def start(backend: str, workdir: Path, pg_admin_url: str, redis_url: str, extra: dict | None = None,
          command: list[str] | None = None):
    """Yields (base_url, server pid, BenchClients, env). ``command``: another server's
    command line (``$OSTIARY_BIND`` and ``$OSTIARY_PORT`` in it are replaced by
    the address and the port to bind); by default the shipped
    gunicorn configuration."""
    instance = workdir / f"ostiary-{backend}"
    instance.mkdir(parents=True, exist_ok=True)
    with fresh_database(backend, workdir, pg_admin_url) as url:
        port = free_port()
        env = environment(instance, port, url, extra or {}, redis_url)
        init = subprocess.run([str(BIN / "ostiary"), "init"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"ostiary init failed: {init.stderr}")
        clients = make_clients(env)
        log_path = instance / "gunicorn.log"
        with log_path.open("ab") as out:
            argv = [part.replace("$OSTIARY_BIND", env["OSTIARY_BIND"]).replace("$OSTIARY_PORT", str(port))
                    for part in command] if command else \
                [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "asgi:app"]
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            base = env["OSTIARY_ISSUER"]
            _wait(base + "/health", proc, log_path)
            yield base, proc.pid, clients, env
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def app_for(env: dict):
    """An in-process app on the server's database and secrets (for services and audit checks)."""
    from app import create_app
    overrides = {"DATABASE_URL": env["OSTIARY_DATABASE_URL"], "INSTANCE_PATH": env["OSTIARY_INSTANCE_PATH"],
                 "SECRET_KEY": env["OSTIARY_SECRET_KEY"], "ISSUER": env["OSTIARY_ISSUER"],
                 "KEY_ENCRYPTION_KEY": env["OSTIARY_KEY_ENCRYPTION_KEY"]}
    return create_app(overrides, check=False)


def make_clients(env: dict) -> BenchClients:
    """Register and approve a client_secret_basic and a private_key_jwt client."""
    from app.extensions import db
    from app.registration import lifecycle
    from app.registration.service import register
    from app.support import clock

    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    app = app_for(env)
    made = {}
    with app.app_context():
        for method in ("client_secret_basic", "private_key_jwt"):
            metadata = {"client_name": f"bench {method}", "grant_types": ["client_credentials", TOKEN_EXCHANGE],
                        "token_endpoint_auth_method": method, "scope": SCOPE}
            if method == "private_key_jwt":
                metadata["jwks"] = {"keys": [key.as_dict(private=False)]}
            registration = register(metadata, address="127.0.0.1")
            lifecycle.approve(
                registration.client.client_id, version=registration.client.version, owner="bench@example.com", purpose="load benchmark",
                scopes=[SCOPE], audiences=[AUDIENCE], max_token_ttl=300,
                expires_at=clock.in_(7 * 86400), review_at=clock.in_(86400), assurance_level=1,
                proofing_method="owner_attestation", evidence="load benchmark", actor="cli:bench")
            made[method] = (registration.client.client_id, registration.client_secret)
        db.session.remove()
        db.engine.dispose()
    (basic_id, basic_secret), (jwt_id, _) = made["client_secret_basic"], made["private_key_jwt"]
    return BenchClients(basic_id, basic_secret, jwt_id, key, env["OSTIARY_ISSUER"])


def audit_summary(env: dict) -> dict:
    """After a run, with the server still up: how long its sequencers took to seal what was
    left when the load stopped, is the chain intact, and how many issuances did it record?"""
    from sqlalchemy import func, select

    from app import audit
    from app.audit import trail
    from app.extensions import db
    from app.models import AuditEvent, IssuedToken
    app = app_for(env)
    with app.app_context():
        started = time.monotonic()
        waiting_at_end = waiting = trail.unsealed()[0]
        while waiting and time.monotonic() - started < 120:
            db.session.rollback()
            time.sleep(0.1)
            waiting = trail.unsealed()[0]
        sealed_after = time.monotonic() - started
        started = time.monotonic()
        count, broken, why = audit.verify()
        seconds = time.monotonic() - started
        tokens = db.session.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        by_type = dict(db.session.execute(
            select(AuditEvent.event_type, func.count()).group_by(AuditEvent.event_type)).all())
        db.session.remove()
        db.engine.dispose()
    return {"events": count, "intact": broken is None and not waiting, "broken_at": broken, "why": why,
            "unsealed_when_the_load_stopped": waiting_at_end, "sealed_within_seconds": round(sealed_after, 2),
            "unsealed_after_waiting": waiting, "verify_seconds": round(seconds, 2), "issued_tokens": tokens,
            "events_by_type": by_type}


def _wait(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"Ostiary did not become healthy:\n{log_path.read_text()}")
