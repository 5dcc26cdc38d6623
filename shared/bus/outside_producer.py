"""What an outside producer (a payment gateway, a checkout, the collectors' desk) needs
to be believed: its envelope signed with its own key, then published with plain kombu.

    from kombu import Producer
    from shared.broker import broker_connection
    from shared.bus.outside_producer import publish_signed
    from shared.events.signing import signing_key

    key = signing_key(open("/run/secrets/payment-gateway.key").read())
    with broker_connection(url) as conn:  # a rediss:// URL: TLS, the server verified
        publish_signed(Producer(conn.default_channel), envelope, key)

A producer that does not ship this package signs as docs/events.md ("Signatures") says;
this module is the reference it can be checked against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kombu.messaging import Producer

from shared.bus.topology import EVENTS_EXCHANGE
from shared.events.signing import SigningKey, sign_envelope


def publish_signed(producer: Producer, envelope: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Sign ``envelope`` with ``key`` and publish it to the topic exchange, routed by its
    type; returns what went out (keep it to publish the same bytes again on a retry)."""
    signed = sign_envelope(envelope, key)
    producer.publish(signed, exchange=EVENTS_EXCHANGE, routing_key=signed["type"], serializer="json", delivery_mode=2)
    return signed
