"""Fixtures: an app per test on SQLite and on the real PostgreSQL, and real servers.

Every database test runs twice, on SQLite and on PostgreSQL (127.0.0.1:5432,
database ``test``; ``OSTIARY_TEST_PG`` overrides). PostgreSQL unreachable is a
failure, never a skip. Each pytest session works in its own PostgreSQL
database, so parallel runs on one machine do not meet.
"""
from __future__ import annotations

import os
import shutil
import uuid

import psycopg
import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from app import create_app
from app.cli import initialise, main
from app.extensions import db
from app.signing import ensure_keys
from app.support import clock

from .factories import make_client
from .servers import LEAST_PASSWORD_COST, TEST_SECRETS, start_server
from .token_actions import Agent, test_client_agent

PG_ADMIN_URL = os.environ.get("OSTIARY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def new_pg_database():
    """Makes fresh PostgreSQL databases (dropped at the end of the session); returns their URLs."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}", pytrace=False)
    made = []

    def new() -> str:
        name = f"ostiary_test_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    try:
        yield new
    finally:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def pg_database(new_pg_database):
    return new_pg_database()


@pytest.fixture(scope="session")
def templates(tmp_path_factory, pg_database):
    """A migrated, keyed database per backend, made once; tests get a copy or a reset."""
    sqlite_dir = tmp_path_factory.mktemp("template")
    made = {}
    for backend, url in (("sqlite", f"sqlite:///{sqlite_dir}/ostiary.db"), ("postgresql", pg_database)):
        app = create_app(_overrides(sqlite_dir, url), check=False)
        initialise(app)
        with app.app_context():
            db.engine.dispose()  # the last connection's close checkpoints SQLite's WAL into the file
        made[backend] = url
    return made


def _overrides(instance, url, **extra):
    return {"INSTANCE_PATH": str(instance), "DATABASE_URL": url, **TEST_SECRETS, **LEAST_PASSWORD_COST,
            "RATELIMIT_STORAGE_URI": "memory://", **extra}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def settings():
    """Per-test setting overrides; set keys before the ``app`` fixture is built."""
    return {}


@pytest.fixture
def app(backend, templates, tmp_path, settings):
    clock.reset()
    if backend == "sqlite":
        src = templates["sqlite"].removeprefix("sqlite:///")
        shutil.copy(src, tmp_path / "ostiary.db")
        url = f"sqlite:///{tmp_path}/ostiary.db"
    else:
        url = templates["postgresql"]
    app = create_app(_overrides(tmp_path, url, **settings), check=False)
    app.config["TESTING"] = True
    if backend == "postgresql":
        with app.app_context():
            _reset_postgres(app)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    clock.reset()


def _reset_postgres(app):
    """Empty every table but the schema version, as a fresh `ostiary init` leaves it."""
    tables = [t.name for t in db.metadata.sorted_tables]
    db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    db.session.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    db.session.commit()
    ensure_keys(app.config["SIGNING_ALG"], app.extensions["ostiary.aead"])


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def new_agent(app, client):
    """Makes agents: ``new_agent(**options)`` registers and approves a client with
    ``factories.make_client(**options)`` and returns its ``token_actions.Agent``;
    ``new_agent(made)`` speaks for a client made already. Requests go through the test's Flask
    client, or through ``post(path, form, headers)`` if given (an ASGI request, say)."""

    def new(made=None, *, post=None, **options) -> Agent:
        if made is not None and options:
            raise TypeError("options are for a client new_agent makes, not for one made already")
        made = make_client(**options) if made is None else made
        if post is None:
            return test_client_agent(client, made, app.config["ISSUER"])
        return Agent(made, app.config["ISSUER"], post)

    return new


class OstiaryRunner(FlaskCliRunner):
    """Flask's runner, invoking the ``ostiary`` group (its commands are not on ``app.cli``)."""

    def invoke(self, cli=None, args=None, **kwargs):
        return super().invoke(cli or main, args, **kwargs)


@pytest.fixture
def runner(app):
    return OstiaryRunner(app)


# The shared servers register many clients from one address within a minute; the limits
# themselves are tested with servers of their own (test_registration, e2e/test_multi_instance).
SHARED_SERVER_LIMITS = {"REGISTRATION_RATE_LIMIT": "10000 per minute", "PENDING_CAP_PER_ADDRESS": 10000}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """A real gunicorn server on SQLite, shared by the e2e tests of a session."""
    with start_server(tmp_path_factory.mktemp("live"), **SHARED_SERVER_LIMITS) as server:
        yield server


@pytest.fixture(scope="session")
def live_server_pg(tmp_path_factory, new_pg_database):
    """A real gunicorn server on a PostgreSQL database of its own."""
    with start_server(tmp_path_factory.mktemp("live-pg"), database_url=new_pg_database(),
                      **SHARED_SERVER_LIMITS) as server:
        yield server


# A scope catalogue with default, plain and sensitive scopes (the approval tests' and the
# console's): ``scopes_file`` puts it in place before the app is built.
SCOPE_CATALOGUE = """
[levels.1]
name = "low"
[levels.2]
name = "substantial"
[levels.3]
name = "high"
[catalogue]
default_assurance = 1
proofing_methods = ["in_person", "document_check", "video_call", "software_statement", "owner_attestation"]
evidence_methods = ["in_person", "document_check", "software_statement"]
[scopes.read]
description = "reads the nightly reports"
default = true
[scopes.write]
description = "writes reports"
[scopes."payments:write"]
assurance = 2
description = "moves money"
sensitive = true
"""


@pytest.fixture
def scopes_file(tmp_path, settings):
    path = tmp_path / "scopes.toml"
    path.write_text(SCOPE_CATALOGUE)
    settings["SCOPES_FILE"] = str(path)
    return path
