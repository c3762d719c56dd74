import runpy

import pytest

from app import StartupError, create_app, settings

from .servers import ROOT

SECRETS = {"OSTIARY_SECRET_KEY": "s" * 40, "OSTIARY_KEY_ENCRYPTION_KEY": "k" * 40}


def test_layers_defaults_file_environment(tmp_path):
    config = tmp_path / "ostiary.toml"
    config.write_text('access_token_ttl = 120\nregistration_policy = "software_statement"\n')
    values = settings.load(environ={"OSTIARY_CONFIG": str(config), "OSTIARY_ACCESS_TOKEN_TTL": "60",
                                    "OSTIARY_INSTANCE_PATH": str(tmp_path)})
    assert values["ACCESS_TOKEN_TTL"] == 60  # environment beats the file
    assert values["REGISTRATION_POLICY"] == "software_statement"  # file beats the default
    assert values["SIGNING_ALG"] == "ES256"  # default
    assert values["DATABASE_URL"] == f"sqlite:///{tmp_path}/ostiary.db"


def test_postgres_url_uses_psycopg3():
    values = settings.load(environ={"OSTIARY_DATABASE_URL": "postgresql://u@db/x"})
    assert values["DATABASE_URL"] == "postgresql+psycopg://u@db/x"


@pytest.mark.parametrize("issuer", [
    "ftp://example.com", "https://example.com/?x=1", "https://example.com/#f", "http://example.com",
    "not a url",
])
def test_malformed_issuer_is_refused(issuer):
    with pytest.raises(settings.SettingsError, match="OSTIARY_ISSUER"):
        settings.load(environ={"OSTIARY_ISSUER": issuer})


@pytest.mark.parametrize("issuer", ["https://auth.example.com", "http://127.0.0.1:8000", "http://localhost"])
def test_good_issuer(issuer):
    assert settings.load(environ={"OSTIARY_ISSUER": issuer + "/"})["ISSUER"] == issuer


@pytest.mark.parametrize("env, message", [
    ({"OSTIARY_ACCESS_TOKEN_TTL": "soon"}, "not a valid int"),
    ({"OSTIARY_AUTO_APPROVE": "maybe"}, "not a valid bool"),
    ({"OSTIARY_REGISTRATION_POLICY": "anything"}, "REGISTRATION_POLICY"),
    ({"OSTIARY_DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"OSTIARY_LOGIN_FAILURE_WINDOW": "0"}, "LOGIN_FAILURE_WINDOW must be a whole number of at least 1"),
    ({"OSTIARY_LOGIN_MAX_FAILURES_PER_ADDRESS": "-1"}, "LOGIN_MAX_FAILURES_PER_ADDRESS"),
    ({"OSTIARY_LOGIN_MAX_FAILURES_PER_ACCOUNT": "many"}, "not a valid int"),
    ({"OSTIARY_PASSWORD_TIME_COST": "1"}, "PASSWORD_TIME_COST must be a whole number of at least 2 .OWASP"),
    ({"OSTIARY_PASSWORD_MEMORY_KIB": "4096"}, "PASSWORD_MEMORY_KIB must be a whole number of at least 19456"),
])
def test_bad_values_are_one_clear_line(env, message):
    with pytest.raises(settings.SettingsError, match=message) as info:
        settings.load(environ=env)
    assert "\n" not in str(info.value)


def test_unknown_setting_in_file_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("acess_token_ttl = 5\n")
    with pytest.raises(settings.SettingsError, match="unknown setting 'acess_token_ttl'"):
        settings.load(environ={"OSTIARY_CONFIG": str(config)})


def test_production_refuses_missing_or_short_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OSTIARY_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(StartupError, match="OSTIARY_SECRET_KEY is not set"):
        create_app()
    monkeypatch.setenv("OSTIARY_SECRET_KEY", "short")
    monkeypatch.setenv("OSTIARY_KEY_ENCRYPTION_KEY", "k" * 40)
    with pytest.raises(StartupError, match="at least 32 characters"):
        create_app()
    assert not (tmp_path / "dev-secrets.toml").exists()  # production never generates secrets


def test_dev_server_generates_secrets_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OSTIARY_INSTANCE_PATH", str(tmp_path))
    first = create_app(dev=True, check=False)
    path = tmp_path / "dev-secrets.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    second = create_app(dev=True, check=False)
    assert first.config["KEY_ENCRYPTION_KEY"] == second.config["KEY_ENCRYPTION_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32


def test_login_failure_limits_have_safe_defaults():
    values = settings.load(environ={})
    assert values["LOGIN_FAILURE_WINDOW"] == 900
    # per account above per address: one address alone cannot lock an administrator out
    assert values["LOGIN_MAX_FAILURES_PER_ACCOUNT"] > values["LOGIN_MAX_FAILURES_PER_ADDRESS"] >= 1


@pytest.mark.parametrize("uri, workers, refused", [
    ("memory://", 2, True), ("memory://", 1, False), ("redis://127.0.0.1:6379/0", 8, False),
])
def test_per_process_limit_storage_is_refused_with_several_workers(uri, workers, refused):
    values = settings.load(environ={"OSTIARY_RATELIMIT_STORAGE_URI": uri})
    if not refused:
        settings.check_workers(values, workers)
        return
    with pytest.raises(settings.SettingsError, match="OSTIARY_RATELIMIT_STORAGE_URI=redis://") as info:
        settings.check_workers(values, workers)
    assert "\n" not in str(info.value)


def gunicorn_hook():
    return runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))["nworkers_changed"]


class FakeArbiter:
    def __init__(self):
        self.errors = []
        self.log = self

    def error(self, message, *args):
        self.errors.append(message % args)


def test_gunicorn_refuses_memory_storage_with_several_workers_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("OSTIARY_RATELIMIT_STORAGE_URI", "memory://")
    hook = gunicorn_hook()
    with pytest.raises(SystemExit) as exit_:
        hook(FakeArbiter(), 3, None)
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ostiary: error: OSTIARY_RATELIMIT_STORAGE_URI is memory://")
    assert "gunicorn runs 3 workers" in lines[0] and "OSTIARY_RATELIMIT_STORAGE_URI=redis://" in lines[0]
    hook(FakeArbiter(), 1, None)  # one worker: one process, its count is the only one


def test_gunicorn_accepts_redis_with_several_workers(monkeypatch):
    monkeypatch.setenv("OSTIARY_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/0")
    arbiter = FakeArbiter()
    gunicorn_hook()(arbiter, 4, None)
    assert arbiter.errors == []


def test_gunicorn_logs_a_later_second_worker_on_memory_storage(monkeypatch):
    monkeypatch.setenv("OSTIARY_RATELIMIT_STORAGE_URI", "memory://")
    hook, arbiter = gunicorn_hook(), FakeArbiter()
    hook(arbiter, 1, None)
    hook(arbiter, 2, 1)  # TTIN on a running server: logged, the server keeps running
    assert len(arbiter.errors) == 1 and "memory://" in arbiter.errors[0]


@pytest.mark.parametrize("name, value", [("OSTIARY_THREADS", "many"), ("OSTIARY_THREADS", "0"),
                                         ("OSTIARY_WORKERS", "-1"), ("OSTIARY_PROXY_HOPS", "one")])
def test_gunicorn_refuses_a_malformed_serving_setting_in_one_line(monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ostiary: error: {name}")
