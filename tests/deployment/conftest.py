"""The deployment's observability: real workers serving /metrics, a real Prometheus, promtool."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.system import Databases


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "observability: metrics, health checks, Prometheus rules and dashboard "
                                       "(needs /usr/bin/prometheus and /usr/bin/promtool)")


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    """Three fresh, migrated PostgreSQL databases for one module's workers."""
    created = Databases().create()
    yield created
    created.drop()
