"""The one door through which the command line and the desk put an envelope on the bus.

Every envelope an outside system of this project (the operators' and collectors' desks,
the checkout door) publishes goes through :func:`publish_envelope` (or, several in one
pipeline, :func:`publish_envelopes`): the topic exchange, routing key = the envelope's
type, JSON, signed here with the producer's key (the ring configured, or the one
generated under the data dir: ``shared/key_ring.py``) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu import Connection, Producer

from shared.bus.kombu_redis import bindings_read_once
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
    return publish_envelopes(connection, [(envelope, producer)], ring, declare=declare)[0]


def publish_envelopes(
    connection: Connection,
    envelopes: Sequence[tuple[dict[str, Any], str]],
    ring: KeyRing | None = None,
    *,
    declare: bool = True,
) -> list[str]:
    """Sign each ``(envelope, producer)`` as :func:`publish_envelope` does and publish them
    all in one Redis pipeline (kombu's ``Producer.batch``, the binding table read once):
    what a busy desk has to send at one moment costs one round trip, not three each.
    Returns their event ids, in order; nothing is published when one cannot be signed."""
    for envelope, producer in envelopes:
        if envelope.get("producer") != producer:
            raise ProducerMismatch(f"envelope produced by {envelope.get('producer')!r}, published as {producer!r}")
    if ring is None:
        from shared.key_ring import key_ring
        from shared.settings import get_settings

        ring = key_ring(get_settings())
    signed = [sign_envelope(envelope, ring.signer(producer)) for envelope, producer in envelopes]
    if declare:
        declare_topology(connection)
    publisher = Producer(connection.default_channel)
    with bindings_read_once(publisher.channel), publisher.batch(max_size=4 * len(signed) or 1):
        for envelope in signed:
            publisher.publish(
                envelope, exchange=EVENTS_EXCHANGE, routing_key=envelope["type"], serializer="json", retry=True
            )
    return [str(envelope["event_id"]) for envelope in signed]
