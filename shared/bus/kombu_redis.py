"""The bus's use of kombu's Redis transport beyond kombu's public API, all in one place.

Tested against kombu 5.7 (``TESTED_KOMBU``; ``tests/integration/bus/test_kombu_contract.py``
checks the hand-written parts against kombu's own code on real Redis). A worker refuses to
start on any other minor version (:func:`check_kombu_version`): these are internals, and a
minor release of kombu may change them without notice.

What the bus leans on, and why:

- **The message document.** kombu's Redis transport keeps a queue as a list (LPUSH in,
  BRPOP out) of JSON documents: the body base64-encoded, the delivery tag and
  ``delivery_info`` in ``properties``; priority 0 lives on the queue's base list.
  :func:`message_body` reads one back for the simulator's observer; :class:`BulkTake`'s
  script reads a document's delivery tag. Nothing of the bus writes documents itself: the
  relay publishes through kombu's public ``Producer.batch``. A queue of priority steps
  is one list per step (``Channel._q_for_pri``, ``priority_steps``):
  :func:`priority_queue_keys`, read by the lost job messages' watch
  (``shared/lost_job_messages.py``) with Celery's ``unacked`` hash.
- **Routing.** ``Channel._lookup`` (kombu's own topic matching, which the topic exchange's
  ``deliver`` calls for every message) over ``Channel.get_table`` (the binding set kept in
  Redis): :func:`bindings_read_once` keeps both for one batch of publishes.
- **Ack emulation.** ``QoS.unacked_key`` (a hash: delivery tag -> ``[document, exchange,
  routing key]``) and ``QoS.unacked_index_key`` (a sorted set: tag -> delivery time), the
  in-memory half of ``virtual.QoS.append``/``ack``, ``QoS.pipe_or_acquire`` and
  ``QoS._remove_from_indices``: :class:`BulkTake` records what its Lua script pops exactly
  as ``QoS.append`` does, and :func:`ack_many` acks a batch in one pipeline.
- **The visibility sweep.** ``QoS.restore_visible(num, interval)``,
  ``Channel.unacked_restore_limit``, the transport options ``unacked_key``,
  ``unacked_index_key``, ``unacked_mutex_key`` and ``unacked_restore_throttle`` (new in
  kombu 5.7), and the throttle's arithmetic (a sweep when ``(polls - 1) % throttle == 0``):
  :func:`events_transport_options`, :func:`sweep_expired`.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu
from kombu.message import Message
from kombu.transport import redis as kombu_redis_transport
from kombu.transport.virtual.base import QoS as VirtualQoS

# The kombu minor version whose internals this module was written and tested against.
TESTED_KOMBU = (5, 7)


class UntestedKombuError(RuntimeError):
    """The installed kombu is not the minor version the bus's transport code was tested on."""


def check_kombu_version(installed: str | None = None) -> None:
    """Refuse to run the bus on a kombu whose internals it was not tested against.

    ``installed`` defaults to the running kombu's version."""
    installed = installed if installed is not None else kombu.__version__
    tested = ".".join(map(str, TESTED_KOMBU))
    nxt = f"{TESTED_KOMBU[0]}.{TESTED_KOMBU[1] + 1}"
    match = re.match(r"(\d+)\.(\d+)", installed)
    if match is None or (int(match[1]), int(match[2])) != TESTED_KOMBU:
        raise UntestedKombuError(
            f"kombu {installed} is installed, but the event bus is tested on kombu >={tested},<{nxt} only "
            f"(shared/bus/kombu_redis.py leans on its Redis transport's internals). Install the pinned "
            f"versions: pip install -c constraints.txt -e ."
        )


# -- documents and routing -------------------------------------------------------------


def message_body(document: bytes | str) -> bytes:
    """The body of a document read raw from a queue's list (what a consumer would receive)."""
    message = json.loads(document)
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else body


@contextmanager
def bindings_read_once(channel: Any, leave_out: frozenset[str] = frozenset()) -> Iterator[None]:
    """Read the exchange's binding table, and route each event type, once per batch instead
    of once per message.

    kombu's Redis transport routes every message by reading the binding set from Redis (one
    round trip) and matching the routing key against every binding's pattern (some thirty
    regular expressions here). With the table and each routing key's queues kept for the
    batch, a batch of 500 events costs one read of the table and one routing per event
    type. A queue bound while a batch is being published gets the messages of the next
    batch on, as it would had it been bound a few milliseconds later.

    The queues in ``leave_out`` get nothing of the batch, whatever their bindings (the
    relay leaves out the catch-all ``unrouted``: it publishes contract types only).
    """
    original_table, original_lookup = channel.get_table, channel._lookup
    tables: dict[str, Any] = {}
    routes: dict[tuple[str, str], list[str]] = {}

    def get_table(exchange: str) -> Any:
        if exchange not in tables:
            tables[exchange] = original_table(exchange)
        return tables[exchange]

    def lookup(exchange: str, routing_key: str, default: Any = None) -> list[str]:
        key = (exchange, routing_key)
        if key not in routes:
            routes[key] = [q for q in original_lookup(exchange, routing_key, default) if q not in leave_out]
        return routes[key]

    channel.get_table, channel._lookup = get_table, lookup
    try:
        yield
    finally:
        del channel.get_table, channel._lookup


def waiting_lists(queue: str) -> list[str]:
    """Every Redis list where ``queue``'s messages wait: one per priority step of kombu's
    defaults (``Channel.sep``, ``PRIORITY_STEPS``; priority 0 is the queue's own name), and
    the landing list of the bus's blocking wait (:func:`landing_key`). For readers of queue
    depths that hold no channel."""
    steps = [
        f"{queue}{kombu_redis_transport.Channel.sep}{step}" for step in kombu_redis_transport.PRIORITY_STEPS if step
    ]
    return [queue, *steps, landing_key(queue)]


def priority_queue_keys(channel: Any, queue: str) -> list[str]:
    """The Redis lists holding ``queue``'s messages, one per priority step (kombu's
    ``Channel._q_for_pri`` over ``priority_steps``; priority 0 is the queue's own name)."""
    return [channel._q_for_pri(queue, pri) for pri in channel.priority_steps]


# -- the consumer's side: bulk take, acks, the visibility sweep -------------------------


def unacked_keys(service: str) -> dict[str, str]:
    """Where one service's consumers record the messages they hold: kombu's ``unacked``
    hash, its index by delivery time, and the mutex of its visibility sweep.

    One set per service, not one for the bus. An event bound to several services reaches
    each of their queues as a copy with the same delivery tag (kombu's own producer tags a
    publish once, whatever number of queues it routes to; so does any outside system that
    publishes with kombu), and kombu keys the hash by tag. With one hash for the bus, the
    first service to ack its copy deleted the entry of every other service's copy still
    being handled: a worker dying then lost that copy for good (nothing left for the sweep
    to restore), and a watcher counting the hash saw the bus idle while a batch was still
    being applied. Each service's consumers sweep only their own service's entries; a
    service with no worker running has nobody consuming its queue either, and its next
    worker sweeps what the last one left."""
    prefix = f"baitiao.events.{service}"
    return {
        "unacked_key": f"{prefix}.unacked",
        "unacked_index_key": f"{prefix}.unacked_index",
        "unacked_mutex_key": f"{prefix}.unacked_mutex",
    }


# kombu sweeps when (polls - 1) % throttle == 0: with this throttle, on the first poll only.
KOMBU_SWEEP_NEVER = 10**12


def events_transport_options(visibility_timeout: int, service: str) -> dict[str, Any]:
    """Transport options of a service's events connection.

    The unacked bookkeeping keys are the service's own (:func:`unacked_keys`), apart from
    Celery's: kombu's restore sweep re-queues every entry of its ``unacked`` hash older than
    the visibility timeout, and Celery's long-running job messages must not be swept by the
    events' short timeout.

    kombu sweeps on every Nth poll that found nothing (``unacked_restore_throttle``).
    A consumer closing its batches after a 2 ms idle gap polls empty hundreds of times
    a second, and each sweep is four Redis round trips under a mutex every consumer of
    the service contends for, so that count-driven sweep is turned off here (it runs only
    on the connection's first poll) and the consumer sweeps on a clock instead
    (:func:`sweep_expired`, ``ConsumerConfig.sweep_every_s``).
    """
    return {
        "visibility_timeout": visibility_timeout,
        **unacked_keys(service),
        "unacked_restore_throttle": KOMBU_SWEEP_NEVER,
    }


def sweep_expired(channel: Any) -> None:
    """Put back on their queues the messages delivered more than the visibility timeout
    ago and never acked (their consumer died): kombu's own sweep, run now."""
    channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)


def ack_many(messages: list[Message]) -> None:
    """Ack a committed batch in one Redis round trip instead of one per message.

    kombu's Redis QoS acks a message by removing its tag from two keys (``ZREM`` from the
    ``unacked`` index, ``HDEL`` from the hash); a batch's tags go in one ``ZREM`` and one
    ``HDEL`` of them all, two commands in one round trip whatever the batch's size (two
    commands a message cost more than the take itself: ``baitiao bench transport``). Then
    the in-memory state is updated as ``Message.ack`` does. Any other transport falls back
    to one ``ack()`` per message.
    """
    if not messages:
        return
    qos = messages[0].channel.qos
    if not all(hasattr(qos, name) for name in ("pipe_or_acquire", "unacked_key", "unacked_index_key")):
        for message in messages:
            message.ack()
        return
    tags = [message.delivery_tag for message in messages]
    with qos.pipe_or_acquire() as pipe:
        pipe.zrem(qos.unacked_index_key, *tags).hdel(qos.unacked_key, *tags)
        pipe.execute()
    for message in messages:
        VirtualQoS.ack(qos, message.delivery_tag)
        message._state = "ACK"


def landing_key(queue: str) -> str:
    """The list where a consumer's blocking wait moves a queue's next message
    (:meth:`BulkTake.wait`): a message is always in its queue, on this list or in the
    ``unacked`` hash, never in none of them."""
    return f"{queue}.landing"


# KEYS: queue list, unacked hash, unacked index, landing list, then the queue's priority
# sub-lists; ARGV: how many, the time of delivery. The landing list first (what a blocking
# wait moved there is the oldest message), then the queue, then its sub-lists.
# The hash entry restores the message to this queue only (the anonymous exchange, the queue's name).
_TAKE = """
local taken = {}
local back_to = ',"",' .. cjson.encode(KEYS[1]) .. ']'
local sources = {KEYS[4], KEYS[1]}
for k = 5, #KEYS do sources[#sources + 1] = KEYS[k] end
local source = 1
while #taken < tonumber(ARGV[1]) and source <= #sources do
  local item = redis.call('RPOP', sources[source])
  if not item then
    source = source + 1
  else
    local tag = cjson.decode(item)['properties']['delivery_tag']
    redis.call('ZADD', KEYS[3], ARGV[2], tag)
    redis.call('HSET', KEYS[2], tag, '[' .. item .. back_to)
    taken[#taken + 1] = item
  end
end
return taken
"""


class BulkTake:
    """Takes a queue's messages for one kombu Redis channel, with kombu's ack bookkeeping,
    so that a message is never in neither the queue nor the ``unacked`` hash.

    kombu's own Redis consumer loses a message when its worker dies at the wrong moment.
    It sends ``BRPOP`` and, if ``drain_events`` times out first, leaves that ``BRPOP``
    outstanding on the connection (up to its ``brpop_timeout``): a message arriving then is
    popped by Redis into the socket and written to the ``unacked`` hash only at the next
    ``drain_events``. A worker killed in between (applying a batch, acking, sweeping) takes
    the message with it: nothing is left for the visibility sweep to restore
    (``tests/integration/bus/test_bulk_take.py`` shows both). So the bus does not consume
    through kombu's ``BRPOP`` at all:

    - :meth:`take` pops up to N messages in one Lua script that, in the same atomic step,
      records each one in the ``unacked`` hash and index exactly as kombu's ``QoS.append``
      does: one round trip for a backlog instead of two and a few hundred microseconds of
      Python per message.
    - :meth:`wait` blocks on an empty queue with ``BLMOVE``, which moves the next message
      to the queue's landing list (:func:`landing_key`) atomically and returns within its
      timeout with nothing left outstanding; a :meth:`take` then records it. A worker
      killed between the two leaves the message on the landing list, and the next take of
      any consumer of the queue takes it first.

    The messages become ordinary kombu messages of the consumer's channel: :func:`ack_many`
    (and ``Message.ack``) remove them from the same keys; kombu's visibility sweep restores
    them if the worker dies before acking; a channel closed cleanly restores the unacked
    ones. The entry names the anonymous exchange and the queue itself as where a restore
    goes (kombu's ``[message, exchange, routing key]`` form): kombu would otherwise route a
    restored message by its topic again, to every queue bound to it, and hand a copy to
    services that had already applied theirs (their inboxes would drop it, but a sweep
    after one worker's crash would wake them all). Every producer of the bus sends priority
    0, which kombu keeps on the queue's base list, the one :meth:`wait` blocks on; a
    message on a priority sub-list is taken by the next :meth:`take`.
    """

    def __init__(self, channel: Any, queue: str):
        self.channel = channel
        self.queue = queue
        self.landing = landing_key(queue)
        self._keys = [queue, channel.qos.unacked_key, channel.qos.unacked_index_key, self.landing]
        self._keys += [key for key in priority_queue_keys(channel, queue) if key != queue]
        self._script: Any = None

    @staticmethod
    def supported(channel: Any) -> bool:
        """Only kombu's Redis channel with ack emulation keeps the keys this script writes."""
        qos = getattr(channel, "qos", None)
        return (
            getattr(channel, "ack_emulation", False)
            and not getattr(channel, "global_keyprefix", "")
            and hasattr(qos, "unacked_key")
            and hasattr(qos, "unacked_index_key")
        )

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` messages, at once (none when the queue is empty)."""
        if limit <= 0:
            return []
        qos = self.channel.qos
        with self.channel.conn_or_acquire() as client:
            if self._script is None:
                self._script = client.register_script(_TAKE)
            raw = self._script(keys=self._keys, args=[limit, repr(time.time())], client=client)
        messages = []
        for item in raw:
            message = self.channel.Message(json.loads(item), channel=self.channel)
            VirtualQoS.append(qos, message, message.delivery_tag)  # the in-memory half of QoS.append
            messages.append(message)
        return messages

    def wait(self, limit: int, timeout: float) -> list[Message]:
        """Up to ``limit`` messages, waiting at most ``timeout`` seconds for the first."""
        taken = self.take(limit)
        if taken or timeout <= 0 or limit <= 0:
            return taken
        with self.channel.conn_or_acquire() as client:
            landed = client.blmove(self.queue, self.landing, f"{max(timeout, 0.001):.3f}", "RIGHT", "LEFT")
        return self.take(limit) if landed is not None else []
