"""A service's database as the operators' commands open it.

An embedded SQLite file that does not exist yet is reported (``ConfigurationError``,
with the command that creates it) instead of being created empty by the first read.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from shared.db import engine_for
from shared.settings import ConfigurationError, ServiceName, Settings


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for any other database, or an in-memory one)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def database_exists(settings: Settings, service: ServiceName) -> bool:
    path = sqlite_file(settings.db_url(service))
    return path is None or path.exists()


def service_engine(settings: Settings, service: ServiceName) -> Engine:
    """The service's engine; a missing SQLite file is a ``ConfigurationError``."""
    url = settings.db_url(service)
    if not database_exists(settings, service):
        raise ConfigurationError(f"no {service} database at {sqlite_file(url)}: run `baitiao db upgrade` first")
    return engine_for(url)
