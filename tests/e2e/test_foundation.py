"""The foundation against real processes: gunicorn, the `ostiary` CLI, PyJWT as a relying party."""
import contextlib
import sqlite3
import subprocess

import jwt as pyjwt
import pytest
import requests
from joserfc import jwt

from app import create_app
from app.extensions import db
from tests.servers import BIN, ROOT, server_env, start_server
from tests.waiting import until

pytestmark = pytest.mark.e2e


def sign_with_active_key(server) -> str:
    """Sign as the server would, reading the same database with the same KEK."""
    app = create_app({"DATABASE_URL": server.env.get("OSTIARY_DATABASE_URL", ""),
                      "INSTANCE_PATH": server.env["OSTIARY_INSTANCE_PATH"],
                      "SECRET_KEY": server.env["OSTIARY_SECRET_KEY"],
                      "KEY_ENCRYPTION_KEY": server.env["OSTIARY_KEY_ENCRYPTION_KEY"]}, check=False)
    with app.app_context():
        kid, alg, key = app.extensions["ostiary.keys"].signer()
        db.session.remove()
        db.engine.dispose()
    return jwt.encode({"alg": alg, "kid": kid, "typ": "at+jwt"},
                      {"iss": server.url, "sub": "probe"}, key, algorithms=[alg])


def served_kids(server) -> set[str]:
    return {key["kid"] for key in requests.get(server.url + "/jwks.json", timeout=10).json()["keys"]}


def verify_against_served_jwks(server, token):
    client = pyjwt.PyJWKClient(server.url + "/jwks.json", cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return pyjwt.decode(token, key.key, algorithms=["ES256", "RS256"], issuer=server.url)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_discovery_jwks_and_rotation_against_gunicorn(tmp_path, new_pg_database, database):
    url = new_pg_database() if database == "postgresql" else None
    with start_server(tmp_path, database_url=url, KEY_CACHE_SECONDS=1) as server:
        metadata = requests.get(server.url + "/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == server.url
        assert requests.get(server.url + "/.well-known/openid-configuration").json()["issuer"] == server.url

        before = sign_with_active_key(server)
        assert verify_against_served_jwks(server, before)["sub"] == "probe"

        rotated = server.cli("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        # Each process re-reads the key set after KEY_CACHE_SECONDS: then it publishes the next
        # key the rotation made, which no view of the key set before the rotation had.
        upcoming = rotated.stdout.split("next:")[1].split()[0]
        until(lambda: upcoming in served_kids(server), "the served JWKS to publish the rotated key set")
        after = sign_with_active_key(server)
        assert pyjwt.get_unverified_header(after)["kid"] != pyjwt.get_unverified_header(before)["kid"]
        assert verify_against_served_jwks(server, after)["sub"] == "probe"
        assert verify_against_served_jwks(server, before)["sub"] == "probe"  # still published


def run_gunicorn(env, timeout=30):
    return subprocess.run([str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "asgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("ostiary: error:")]


def test_unreachable_database_stops_startup_with_one_line(tmp_path):
    env = server_env(tmp_path, 1, "postgresql://nobody@127.0.0.1:1/none")
    result = run_gunicorn(env)
    assert result.returncode != 0
    assert len(error_lines(result)) == 1 and "cannot reach the database" in error_lines(result)[0]


def test_malformed_issuer_stops_startup(tmp_path):
    env = server_env(tmp_path, 1)
    env["OSTIARY_ISSUER"] = "https://example.com/?tenant=1"
    result = run_gunicorn(env)
    assert result.returncode != 0 and "OSTIARY_ISSUER" in error_lines(result)[0]


def test_wrong_kek_stops_startup_and_overwrites_nothing(tmp_path):
    with start_server(tmp_path) as server:
        env = dict(server.env)
    db_file = tmp_path / "ostiary.db"
    # Everything the server wrote into the file itself (its WAL checkpointed), so that a later
    # reader's checkpoint on close changes no byte unless something new was written.
    with contextlib.closing(sqlite3.connect(db_file)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db_file.read_bytes()
    env["OSTIARY_KEY_ENCRYPTION_KEY"] = "a different key-encryption key, long enough"
    result = run_gunicorn(env)
    assert result.returncode != 0
    assert "does not decrypt the stored signing keys" in error_lines(result)[0]
    init = subprocess.run([str(BIN / "ostiary"), "init"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "already initialised" in init.stdout  # init does not replace keys it cannot read
    assert db_file.read_bytes() == before


def test_uninitialised_database_asks_for_init(tmp_path):
    result = run_gunicorn(server_env(tmp_path, 1))
    assert result.returncode != 0 and "run `ostiary init`" in error_lines(result)[0]


def test_per_process_rate_limits_under_several_workers_stop_startup_with_one_line(tmp_path):
    result = run_gunicorn(server_env(tmp_path, 1, RATELIMIT_STORAGE_URI="memory://", WORKERS=3))
    assert result.returncode != 0
    assert len(error_lines(result)) == 1
    assert "gunicorn runs 3 workers" in error_lines(result)[0]
    assert "OSTIARY_RATELIMIT_STORAGE_URI=redis://" in error_lines(result)[0]


def test_one_worker_may_count_its_limits_in_memory(tmp_path):
    with start_server(tmp_path, RATELIMIT_STORAGE_URI="memory://", WORKERS=1) as server:
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
