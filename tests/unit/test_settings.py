"""Settings as a docker compose user writes them: empty means unset, secrets from files,
passwords apart from their URLs, and a half-configured deployment refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import ConfigurationError, Settings

SERVICE_URLS = ("BAITIAO_ACCOUNTS_DB_URL", "BAITIAO_COLLECTIONS_DB_URL", "BAITIAO_RESTRUCTURING_DB_URL")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("BAITIAO_"):
            monkeypatch.delenv(key)


def test_an_empty_value_is_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAITIAO_RULES_FILE", "")
    monkeypatch.setenv("BAITIAO_BROKER_URL", "")
    monkeypatch.setenv("BAITIAO_METRICS_PORT", "")
    settings = Settings()
    assert settings.rules_file is None and settings.embedded and settings.metrics_port is None
    assert settings.rules().overdue.grace_period_days == 3  # the rulebook's defaults, no file read


def test_a_setting_is_read_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "broker_url"
    secret.write_text("redis://:s3cret@redis:6379/0\n", encoding="utf-8")
    monkeypatch.setenv("BAITIAO_BROKER_URL_FILE", str(secret))
    monkeypatch.setenv("BAITIAO_ACCOUNTS_DB_URL", "postgresql+psycopg://a@db/a")
    assert Settings().resolved_broker_url() == "redis://:s3cret@redis:6379/0"


def test_the_environment_wins_over_a_file_and_an_empty_file_variable_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "level").write_text("DEBUG", encoding="utf-8")
    monkeypatch.setenv("BAITIAO_LOG_LEVEL_FILE", str(tmp_path / "level"))
    monkeypatch.setenv("BAITIAO_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("BAITIAO_RULES_FILE_FILE", "")
    settings = Settings()
    assert settings.log_level == "ERROR" and settings.rules_file is None


def test_a_missing_secret_file_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BAITIAO_BROKER_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="BAITIAO_BROKER_PASSWORD_FILE=.*cannot read it"):
        Settings()


def test_passwords_apart_from_their_urls_are_put_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "db").write_text("p@ss:word\n", encoding="utf-8")
    monkeypatch.setenv("BAITIAO_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("BAITIAO_BROKER_PASSWORD", "r/pw")
    monkeypatch.setenv(
        "BAITIAO_ACCOUNTS_DB_URL", "postgresql+psycopg://baitiao_accounts@postgres:5432/baitiao_accounts"
    )
    monkeypatch.setenv("BAITIAO_ACCOUNTS_DB_PASSWORD_FILE", str(tmp_path / "db"))
    settings = Settings()
    assert settings.resolved_broker_url() == "redis://:r%2Fpw@redis:6379/0"
    assert (
        settings.db_url("accounts")
        == "postgresql+psycopg://baitiao_accounts:p%40ss%3Aword@postgres:5432/baitiao_accounts"
    )
    assert "r/pw" not in repr(settings) and "p@ss" not in repr(settings)


def test_a_url_keeps_its_own_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAITIAO_BROKER_URL", "redis://user:own@redis:6379/0")
    monkeypatch.setenv("BAITIAO_BROKER_PASSWORD", "other")
    assert Settings().resolved_broker_url() == "redis://user:own@redis:6379/0"


@pytest.mark.parametrize("given", ["postgres://u@h:5432/d", "postgresql://u@h:5432/d"])
def test_provider_style_postgres_urls_name_the_shipped_driver(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("BAITIAO_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("BAITIAO_COLLECTIONS_DB_URL", given)
    assert Settings().db_url("collections") == "postgresql+psycopg://u@h:5432/d"


def test_a_broker_without_a_services_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAITIAO_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("BAITIAO_ACCOUNTS_DB_URL", "postgresql+psycopg://a@db/a")
    settings = Settings()
    assert settings.configured_db_services() == ("accounts",)
    with pytest.raises(ConfigurationError, match="BAITIAO_COLLECTIONS_DB_URL is not"):
        settings.db_url("collections")


def test_a_database_without_a_broker_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAITIAO_RESTRUCTURING_DB_URL", "postgresql+psycopg://r@db/r")
    with pytest.raises(ConfigurationError, match="BAITIAO_RESTRUCTURING_DB_URL set but BAITIAO_BROKER_URL is not"):
        Settings().resolved_broker_url()


def test_sqlite_files_beside_the_embedded_broker_are_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BAITIAO_ACCOUNTS_DB_URL", f"sqlite:///{tmp_path}/a.db")
    monkeypatch.setenv("BAITIAO_EMBEDDED_BROKER_PORT", "6411")
    settings = Settings()
    assert settings.resolved_broker_url() == "redis://127.0.0.1:6411/0"
    assert settings.db_url("accounts") == f"sqlite:///{tmp_path}/a.db"


def test_the_embedded_default_needs_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.configured_db_services() == ("accounts", "collections", "restructuring")
    assert settings.db_url("accounts") == f"sqlite:///{tmp_path.resolve() / 'accounts.db'}"
    assert settings.resolved_broker_url() == "redis://127.0.0.1:6399/0"


def test_a_rediss_broker_verifies_the_server_with_the_given_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ssl

    from shared.broker import broker_tls, celery_tls_config

    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n", encoding="utf-8")
    monkeypatch.setenv("BAITIAO_BROKER_URL", "rediss://redis:6380/0")
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CA_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CERT_FILE", str(tmp_path / "client.pem"))
    monkeypatch.setenv("BAITIAO_BROKER_TLS_KEY_FILE", str(tmp_path / "client.key"))
    expected = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(tmp_path / "ca.pem"),
        "ssl_certfile": str(tmp_path / "client.pem"),
        "ssl_keyfile": str(tmp_path / "client.key"),
    }
    settings = Settings()
    assert settings.broker_tls() == expected
    assert broker_tls(settings.resolved_broker_url()) == expected  # the environment's, by default
    conf = celery_tls_config(settings.resolved_broker_url(), settings)
    assert conf["broker_use_ssl"] == conf["redis_backend_use_ssl"] == conf["redbeat_redis_use_ssl"] == expected


def test_a_rediss_broker_without_files_still_verifies_against_the_system_trust_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssl

    monkeypatch.setenv("BAITIAO_BROKER_URL", "rediss://redis:6380/0")
    assert Settings().broker_tls() == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_a_plain_broker_has_no_tls_and_refuses_tls_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shared.broker import celery_tls_config

    monkeypatch.setenv("BAITIAO_BROKER_URL", "redis://redis:6379/0")
    assert Settings().broker_tls() is None and celery_tls_config("redis://redis:6379/0") == {}
    (tmp_path / "ca.pem").write_text("-----BEGIN-----\n", encoding="utf-8")
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CA_FILE", str(tmp_path / "ca.pem"))
    with pytest.raises(ConfigurationError, match="BAITIAO_BROKER_TLS_CA_FILE set but .* not a rediss:// URL"):
        Settings().resolved_broker_url()


def test_a_client_key_needs_its_certificate_and_the_files_must_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BAITIAO_BROKER_URL", "rediss://redis:6380/0")
    monkeypatch.setenv("BAITIAO_BROKER_TLS_KEY_FILE", str(tmp_path / "client.key"))
    with pytest.raises(ConfigurationError, match="go together"):
        Settings().broker_tls()
    monkeypatch.delenv("BAITIAO_BROKER_TLS_KEY_FILE")
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CA_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigurationError, match="BAITIAO_BROKER_TLS_CA_FILE=.*absent.pem: no such file"):
        Settings().resolved_broker_url()
