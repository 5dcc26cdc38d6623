"""Shared fixtures. Integration and e2e tests use real Redis and real PostgreSQL."""
from __future__ import annotations

import os

import pytest

# Each test session gets its own Redis database (emptied at start).
TEST_REDIS_DB = int(os.environ.get("BAITIAO_TEST_REDIS_DB", "3"))


@pytest.fixture(scope="session")
def redis_db() -> int:
    return TEST_REDIS_DB


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    """Warnings and errors only: progress lines of the jobs would drown the test output."""
    from shared.log import configure_logging

    configure_logging("WARNING", json_output=False)
