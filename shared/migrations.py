"""Alembic, one migration history per service database.

``upgrade(definition, url)`` brings one service's database to head; PostgreSQL
databases that do not exist yet are created first (the embedded SQLite files
are created by SQLite itself).
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.service import ServiceDefinition


def alembic_config(definition: ServiceDefinition, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(definition.migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["target_metadata"] = definition.metadata
    config.attributes["url"] = url
    return config


def ensure_database(url: str) -> None:
    """Create a PostgreSQL database named in the URL when it is missing."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def upgrade(definition: ServiceDefinition, url: str, revision: str = "head") -> None:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    ensure_database(url)
    command.upgrade(alembic_config(definition, url), revision)


def run_env() -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    config = context.config
    metadata = config.attributes["target_metadata"]
    url: str | None = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL to migrate (alembic_config gives the service's)")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
