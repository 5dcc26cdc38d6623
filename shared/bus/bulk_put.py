"""Putting a relayed batch on kombu's Redis queues in one pipeline: the counterpart of
``bulk_take``.

kombu's Redis transport keeps a message as one JSON document on a list named after the
queue (LPUSH by the producer, BRPOP by the consumer). ``Producer.publish`` builds that
document per message through its serializer registry, headers and properties, routes
it, base64-encodes the body and writes one JSON document per destination queue: measured
on the relay (``baitiao bench relay``) it was most of the relay's time, and the relay
shares its worker's interpreter with the event handlers. The outbox rows are already
JSON, so :func:`put_batch` writes the same documents itself: the routing is still
kombu's own (``channel._lookup`` over the exchange's binding table, read once per batch
by ``relay.bindings_read_once``), each event's document is built once and pushed to every
queue its type routes to, each copy with a delivery tag of its own (kombu's producer
gives all copies one tag; a tag shared by two queues' copies is one entry in a shared
unacked hash), and the batch goes out in one pipeline.

The document is what kombu 5's Redis transport writes for a persistent JSON message at
the default priority (priority 0 lives on the queue's base list, the one every consumer
and ``bulk_take`` read); ``tests/integration/bus/test_relay.py`` reads the relayed
messages back with a plain kombu ``Consumer``. Queues of the bus have no ``x-expires``,
so there is no expiry to refresh as kombu does for such queues.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import uuid
from collections.abc import Iterable
from typing import Any

# A delivery tag only has to be unique among the bus's unacked messages: one random
# prefix per process and a counter give that for a fraction of a uuid4 per message
# (which reads the system's random source every time). The prefix is drawn again in a
# forked child (a prefork job process), so parent and child never share a sequence.
_tag_prefix = uuid.uuid4().hex
_tag_counter = itertools.count()


def _new_tag_sequence() -> None:
    global _tag_prefix, _tag_counter
    _tag_prefix, _tag_counter = uuid.uuid4().hex, itertools.count()


os.register_at_fork(after_in_child=_new_tag_sequence)


def delivery_tag() -> str:
    return f"{_tag_prefix}.{next(_tag_counter)}"


# Where a copy's own tag goes in a document built once for every queue of its event
# (nothing else in a document can hold it: the body is base64, the rest fixed names).
_TAG_SLOT = "<delivery-tag>"


def message_document(body: str, exchange: str, routing_key: str, tag: str | None = None) -> str:
    """The JSON document kombu's Redis transport stores for ``body`` (JSON text)."""
    return json.dumps({
        "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": tag if tag is not None else delivery_tag(),
        },
    })


def put_batch(channel: Any, exchange: str, messages: Iterable[tuple[str, str]]) -> int:
    """Route and push ``(routing_key, body)`` pairs in one pipeline; returns how many
    documents were pushed (a message bound to no queue is dropped, as kombu drops it)."""
    pushed = 0
    with channel.client.pipeline(transaction=False) as pipe:
        for routing_key, body in messages:
            queues = [q for q in channel._lookup(exchange, routing_key) if q and q != channel.deadletter_queue]
            if not queues:
                continue
            document = message_document(body, exchange, routing_key, tag=_TAG_SLOT)
            for queue in queues:  # one tag per copy: each queue's copy is acked on its own
                pipe.lpush(queue, document.replace(_TAG_SLOT, delivery_tag(), 1))
                pushed += 1
        pipe.execute()
    return pushed
