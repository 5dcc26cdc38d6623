"""Each service's migrations: one head, and at head the database is what the models say
(a model changed without its migration, or two migrations on one parent, fails here)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from baitiao import registry
from shared.migrations import alembic_config, upgrade
from tests.support.system import SERVICES, Databases

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
def test_one_head(service: str) -> None:
    definition = registry.definition(service)
    script = ScriptDirectory.from_config(alembic_config(definition, "sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


@pytest.mark.parametrize("service", SERVICES)
def test_at_head_the_database_is_what_the_models_say(service: str) -> None:
    databases = Databases()
    url = databases.url(service)
    definition = registry.definition(service)
    try:
        upgrade(definition, url)
        engine = create_engine(url)
        with engine.connect() as conn:
            differences = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), definition.metadata
            )
        engine.dispose()
        assert differences == [], differences
    finally:
        databases.drop()
