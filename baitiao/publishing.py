"""The one door through which the command line and the desk put an envelope on the bus.

Every envelope an outside system of this project (the operators' and collectors' desks,
the checkout door) publishes goes through :func:`publish_envelope`: the topic exchange,
routing key = the envelope's type, JSON. The producer's name is passed beside the
envelope so that a producer's signature, when envelopes are signed, is added here and
nowhere else.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Producer

from shared.bus.topology import EVENTS_EXCHANGE, declare_topology


class ProducerMismatch(ValueError):
    """The envelope names another producer than the one publishing it."""


def publish_envelope(connection: Connection, envelope: dict[str, Any], producer: str, *, declare: bool = True) -> str:
    """Publish ``envelope`` (from ``new_envelope``) as ``producer``; returns its event id.

    ``declare``: declare the topology first (kombu's Redis transport drops a message that
    matches no binding); a long-lived publisher declares once and passes False after."""
    if envelope.get("producer") != producer:
        raise ProducerMismatch(f"envelope produced by {envelope.get('producer')!r}, published as {producer!r}")
    if declare:
        declare_topology(connection)
    Producer(connection.default_channel).publish(
        envelope, exchange=EVENTS_EXCHANGE, routing_key=envelope["type"], serializer="json", retry=True
    )
    return str(envelope["event_id"])
