"""Shared fixtures. Integration and e2e tests use real Redis and real PostgreSQL."""
from __future__ import annotations

import os

import pytest

# Each test session gets its own Redis database (emptied at start).
TEST_REDIS_DB = int(os.environ.get("BAITIAO_TEST_REDIS_DB", "3"))


@pytest.fixture(scope="session")
def redis_db() -> int:
    return TEST_REDIS_DB
