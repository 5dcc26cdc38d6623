"""Alembic environment of this service: the shared runner with this service's metadata."""

from shared.migrations import run_env

run_env()
