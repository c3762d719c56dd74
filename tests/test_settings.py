import pytest

from app import StartupError, create_app, settings

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
