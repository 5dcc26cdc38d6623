"""The one door through which the command line and the desk put an envelope on the bus.

Every envelope an outside system of this project (the operators' and collectors' desks,
the checkout door) publishes goes through :func:`publish_envelope`: the topic exchange,
routing key = the envelope's type, JSON, signed here with the producer's key (the ring
configured, or the one generated under the data dir: ``shared/key_ring.py``) and nowhere
else.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Producer

from shared.bus.topology import EVENTS_EXCHANGE, declare_topology
from shared.events.signing import KeyRing, sign_envelope


class ProducerMismatch(ValueError):
    """The envelope names another producer than the one publishing it."""


def publish_envelope(
    connection: Connection,
    envelope: dict[str, Any],
    producer: str,
    ring: KeyRing | None = None,
    *,
    declare: bool = True,
) -> str:
    """Sign ``envelope`` (from ``new_envelope``) as ``producer`` and publish it; returns its
    event id. Raises ``LookupError`` when ``ring`` (default: this machine's) holds no key
    of the producer's.

    ``declare``: declare the topology first (kombu's Redis transport drops a message that
    matches no binding); a long-lived publisher declares once and passes False after."""
    if envelope.get("producer") != producer:
        raise ProducerMismatch(f"envelope produced by {envelope.get('producer')!r}, published as {producer!r}")
    if ring is None:
        from shared.key_ring import key_ring
        from shared.settings import get_settings

        ring = key_ring(get_settings())
    envelope = sign_envelope(envelope, ring.signer(producer))
    if declare:
        declare_topology(connection)
    Producer(connection.default_channel).publish(
        envelope, exchange=EVENTS_EXCHANGE, routing_key=envelope["type"], serializer="json", retry=True
    )
    return str(envelope["event_id"])
