"""Fixtures of the deployment tests: the compose stack and its observability."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.system import Databases


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    """Three fresh, migrated PostgreSQL databases for one module's workers."""
    created = Databases().create()
    yield created
    created.drop()
