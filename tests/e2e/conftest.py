"""The running system: three real worker processes on real Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.system import Databases, OutsideSystem, Workers, fresh_redis_db


@dataclass
class System:
    broker_url: str
    databases: Databases
    workers: Workers
    outside: OutsideSystem
    env: dict[str, str]


def start_system(
    redis_db: int,
    log_dir: Path,
    services: tuple[str, ...] = ("accounts", "collections", "restructuring"),
    extra_env: dict[str, str] | None = None,
) -> System:
    broker_url = fresh_redis_db(redis_db)
    databases = Databases().create()
    env = {
        "BAITIAO_BROKER_URL": broker_url,
        "BAITIAO_VISIBILITY_TIMEOUT": "15",
        "BAITIAO_DATA_DIR": str(log_dir / "data"),
        "BAITIAO_LOG_LEVEL": "WARNING",
        **databases.env(),
        **(extra_env or {}),
    }
    outside = OutsideSystem(broker_url)
    workers = Workers(env, log_dir)
    workers.start_all(services)
    return System(broker_url, databases, workers, outside, env)


def stop_system(system: System) -> None:
    system.workers.stop_all()
    system.outside.close()
    system.databases.drop()


@pytest.fixture(scope="session")
def system(redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(redis_db, tmp_path_factory.mktemp("system"))
    yield running
    stop_system(running)
