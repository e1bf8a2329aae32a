from __future__ import annotations

from typing import Any

import pytest

from core.settings import ConfigurationError, Settings

STRONG = "k" * 48


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "DB_HOST",
        "REDIS_URL",
        "REDIS_HOST",
        "BROKER_URL",
        "SECRET_KEY",
        "ENVIRONMENT",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "REDIS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        make(environment="production")


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(ConfigurationError, match="32"):
        make(environment="production", secret_key="short-secret")


def test_production_is_the_default_environment() -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_dev_accepts_the_default_secret() -> None:
    assert make(environment="dev").is_dev


def test_seed_variables_build_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_USER", "app")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss/word")
    monkeypatch.setenv("POSTGRES_DB", "conveyor")
    url = make(environment="production", secret_key=STRONG).sqlalchemy_url()
    assert url == "postgresql+psycopg2://app:p%40ss%2Fword@db.internal:5432/conveyor"


def test_database_url_wins_over_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@primary/app")
    assert make(environment="dev").sqlalchemy_url() == "postgresql+psycopg2://u@primary/app"


def test_broker_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert make(environment="dev").celery_broker_url() == "redis://cache:6380/0"
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/2")
    assert make(environment="dev").celery_broker_url() == "redis://r:6379/2"
    monkeypatch.setenv("BROKER_URL", "amqp://guest@rabbit//")
    assert make(environment="dev").celery_broker_url() == "amqp://guest@rabbit//"


def test_dev_without_broker_uses_the_filesystem_broker() -> None:
    assert make(environment="dev").celery_broker_url() == "filesystem://"


def test_production_without_database_or_broker_says_what_to_set() -> None:
    settings = make(environment="production", secret_key=STRONG)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        settings.sqlalchemy_url()
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        settings.celery_broker_url()


def test_secrets_are_not_in_the_repr() -> None:
    settings = make(environment="dev", secret_key=STRONG, database_url="postgresql://u:pw@h/d")
    assert STRONG not in repr(settings)
    assert "pw@" not in repr(settings)


def test_an_empty_metrics_token_is_unset_and_a_short_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_TOKEN", "")
    assert make(environment="dev").metrics_token is None
    monkeypatch.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ValueError, match="at least 16"):
        make(environment="dev")
