"""Finds each service's definition and Celery app by name (the command line's only door in)."""

from __future__ import annotations

import importlib
from types import ModuleType

from celery import Celery

from shared.service import JobSpec, ServiceDefinition
from shared.settings import SERVICES


def worker_module(service: str) -> ModuleType:
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{service}.worker")


def definition(service: str) -> ServiceDefinition:
    return worker_module(service).DEFINITION


def celery_app(service: str) -> Celery:
    return worker_module(service).app


def all_jobs() -> dict[str, tuple[str, JobSpec]]:
    """Job name (EVENTS.md) → (service, spec)."""
    jobs: dict[str, tuple[str, JobSpec]] = {}
    for service in SERVICES:
        for spec in definition(service).jobs:
            jobs[spec.name] = (service, spec)
    return jobs
