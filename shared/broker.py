"""Clients of the broker: kombu connections, redis-py clients and Celery's options, each
with the broker's TLS when its URL is ``rediss://``.

Every process of the system reaches Redis through these (the events consumers, the outbox
relays, the unrouted watch, Celery's workers, beat and result backend, the command line's
checks and gauges), so that none of them connects over TLS without verifying the server:
kombu given a ``rediss://`` URL and no ssl options connects with ``CERT_NONE``. The options
themselves come from one place, :meth:`shared.settings.Settings.broker_tls`.

``settings`` defaults to the environment's (:func:`shared.settings.get_settings`): the TLS
files are the process's, whoever opens the connection.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.connection import Connection

from shared.settings import Settings, get_settings


def broker_tls(url: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """The ssl options for the broker at ``url``; None when it is not ``rediss://``."""
    if not url.startswith("rediss://"):
        return None
    return (settings or get_settings()).broker_tls(url)


def broker_connection(url: str, settings: Settings | None = None, **options: Any) -> Connection:
    """A kombu connection to ``url`` (``options``: kombu's, ``transport_options`` say)."""
    return Connection(url, ssl=broker_tls(url, settings) or False, **options)


def broker_client(url: str, settings: Settings | None = None, **options: Any) -> redis.Redis:
    """A redis-py client on ``url`` (``options``: redis-py's, ``socket_timeout`` say)."""
    return redis.Redis.from_url(url, **(broker_tls(url, settings) or {}), **options)


def celery_tls_config(url: str, settings: Settings | None = None) -> dict[str, Any]:
    """Celery's settings for TLS to the broker and the result backend (both at ``url``),
    and redbeat's for the beat's own connection: none for a plain ``redis://`` URL."""
    tls = broker_tls(url, settings)
    if tls is None:
        return {}
    return {"broker_use_ssl": tls, "redis_backend_use_ssl": dict(tls), "redbeat_redis_use_ssl": dict(tls)}
