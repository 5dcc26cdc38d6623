"""Shared fixtures. Integration and e2e tests use real Redis and real PostgreSQL."""

from __future__ import annotations

import os

import pytest

from tests.support.signing import ENV as SIGNING_ENV

# Every process of the session signs and verifies with the test ring: in-process relays
# read it from the settings, spawned workers inherit it (tests/support/signing.py).
os.environ.update(SIGNING_ENV)

# Each test session gets its own Redis database (emptied at start).
TEST_REDIS_DB = int(os.environ.get("BAITIAO_TEST_REDIS_DB", "3"))


@pytest.fixture(scope="session")
def redis_db() -> int:
    return TEST_REDIS_DB


@pytest.fixture(scope="session")
def quiet_redis_db() -> int:
    """A Redis database no worker consumes: the e2e tests' session-wide system keeps its
    three workers on ``redis_db`` until the session ends (the e2e modules' own systems take
    ``redis_db`` + 1 to + 4). A bus test that reads the services' queues, or waits for
    kombu's visibility sweep, would otherwise race those workers: they consume the queues,
    and their sweeps take the same Redis mutex."""
    return TEST_REDIS_DB + 5


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    """Warnings and errors only: progress lines of the jobs would drown the test output."""
    from shared.log import configure_logging

    configure_logging("WARNING", json_output=False)
