"""The desk's link to the bus: one publishing connection, one listener for the replies.

Commands are published through :func:`baitiao.publishing.publish_envelopes` and recorded
in ``desk_commands``; the listener's queue is bound to the answers of
:data:`baitiao.desk.commands.REPLIES` and stores the first answer each desk command caused
(matched by ``causation_id``), so a command's outcome can be read afterwards. Whoever
waits for an answer (the checkout door) is woken as it arrives.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from kombu import Connection, Consumer, Queue
from kombu.message import Message
from kombu.entity import binding
from sqlalchemy import Engine, bindparam, update

from baitiao.desk import state
from baitiao.desk.commands import REPLIES
from baitiao.publishing import publish_envelopes
from shared.broker import broker_connection
from shared.bus.kombu_redis import BulkTake, ack_many
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology
from shared.events.signing import KeyRing
from shared.settings import Settings

log = structlog.get_logger(__name__)

REPLY_BATCH = 500  # answers taken (and stored) at a time


@dataclass
class _Waiter:
    """Someone waiting for the answer to one command: in an event loop, without a thread.

    The listener's thread hands the answer over with ``call_soon_threadsafe``; a request
    waiting holds no thread of the server's pool, so the waits in flight are not bounded
    by its size (with a thread each, 40 threads and answers taking 0.4 s on a busy machine
    held the door below 100 requests a second)."""

    reply: dict[str, Any] | None = None
    arrived: asyncio.Future[None] | None = None  # set while someone awaits it

    def answer(self, event: dict[str, Any]) -> None:
        """Called under the waiters' lock, from the listener's thread."""
        if self.reply is not None:
            return
        self.reply = event
        if self.arrived is not None:
            arrived = self.arrived
            arrived.get_loop().call_soon_threadsafe(lambda: arrived.done() or arrived.set_result(None))


@dataclass
class _Outgoing:
    """A command queued for the next publish (:meth:`DeskBus.publish`)."""

    envelope: dict[str, Any]
    producer: str
    done: bool = False
    error: Exception | None = None


class DeskBus:
    """Publishes the desk's commands and hears their answers (start, then stop)."""

    def __init__(self, broker_url: str, engine: Engine, ring: KeyRing, settings: Settings | None = None):
        self.broker_url = broker_url
        self.settings = settings  # its TLS files, for a rediss:// broker (default: the environment's)
        self.engine = engine
        self.ring = ring  # the desk signs its commands as their producer (collectors' desk, ...)
        self._publishing = broker_connection(broker_url, settings, connect_timeout=5)
        self._publish_lock = threading.Lock()  # held while publishing: one caller at a time
        self._queued: list[_Outgoing] = []
        self._queued_lock = threading.Lock()
        self._declared = False
        self._waiters: dict[str, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue = Queue(
            f"desk.replies.{uuid.uuid4().hex[:10]}",
            exchange=EVENTS_EXCHANGE,
            bindings=[binding(EVENTS_EXCHANGE, routing_key=key) for key in REPLIES],
            durable=False,
            auto_delete=False,
        )

    # --- publishing ------------------------------------------------------------------------

    def publish(self, envelope: dict[str, Any], producer: str) -> str:
        """Publish one command; returns once the broker has it (or raises what it raised).

        Commands published at the same moment go out together: each caller queues its
        envelope, and whoever holds the connection publishes everything queued in one
        pipeline (:func:`baitiao.publishing.publish_envelopes`), its own and the others'.
        Under load a publish costs a share of one round trip instead of a wait in line for
        one connection's three round trips each."""
        item = _Outgoing(envelope, producer)
        with self._queued_lock:
            self._queued.append(item)
        with self._publish_lock:
            if not item.done:  # else another caller published it while this one waited
                with self._queued_lock:
                    batch, self._queued = self._queued, []
                try:
                    publish_envelopes(
                        self._publishing,
                        [(i.envelope, i.producer) for i in batch],
                        self.ring,
                        declare=not self._declared,
                    )
                    self._declared = True
                except Exception as exc:  # noqa: BLE001 - every caller of the batch hears it
                    for queued in batch:
                        queued.error = exc
                for queued in batch:
                    queued.done = True
        if item.error is not None:
            raise item.error
        return str(envelope["event_id"])

    def expect(self, event_id: str) -> None:
        """Announce a wait for the answer to ``event_id`` (before publishing it)."""
        with self._waiters_lock:
            self._waiters[event_id] = _Waiter()

    async def wait(self, event_id: str, timeout: float) -> dict[str, Any] | None:
        """The answer to ``event_id`` if it arrives within ``timeout`` seconds (announced
        with :meth:`expect`; None for a command no one expected)."""
        arrived = asyncio.get_running_loop().create_future()
        with self._waiters_lock:
            waiter = self._waiters.get(event_id)
            if waiter is None:
                return None
            if waiter.reply is None:
                waiter.arrived = arrived
        try:
            if waiter.reply is None:
                await asyncio.wait_for(arrived, timeout)
        except TimeoutError:
            pass
        finally:
            with self._waiters_lock:
                self._waiters.pop(event_id, None)
        return waiter.reply

    # --- listening -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._listen, name="desk-replies", daemon=True)
        self._thread.start()
        if not self._listening.wait(timeout):
            raise RuntimeError(f"the desk could not bind its reply queue on {self.broker_url.split('@')[-1]}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with broker_connection(self.broker_url, self.settings, connect_timeout=3) as connection:
                self.queue(connection.default_channel).delete()
        except Exception:  # noqa: BLE001 - a broker gone at shutdown leaves a queue no one reads
            log.warning("desk_reply_queue_not_deleted", queue=self.queue.name)
        self._publishing.release()

    @property
    def listening(self) -> bool:
        """Whether the reply listener is connected and consuming now."""
        return self._listening.is_set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with broker_connection(self.broker_url, self.settings, connect_timeout=5) as connection:
                    declare_topology(connection)
                    channel = connection.channel()
                    self.queue(channel).declare()
                    self._listening.set()
                    self._take_replies(connection, channel)
            except Exception as exc:  # noqa: BLE001 - the broker went away: connect again
                self._listening.clear()
                log.warning("desk_listener_reconnecting", error=str(exc)[:200])
                self._stop.wait(1.0)

    def _take_replies(self, connection: Connection, channel: Any) -> None:
        """Every answer waiting, a batch at a time (the bus's bulk take: one round trip for a
        backlog), until told to stop; kombu's own consumer only off its Redis transport."""
        if not BulkTake.supported(channel):
            held: list[Message] = []
            with Consumer(channel, [self.queue], on_message=held.append, accept=["json"]):
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass
                    batch, held[:] = list(held), []
                    self._answered(batch)
                    ack_many(batch)
            return
        bulk = BulkTake(channel, self.queue.name)
        while not self._stop.is_set():
            batch = bulk.wait(REPLY_BATCH, 0.5)
            self._answered(batch)
            ack_many(batch)

    def _answered(self, messages: list[Message]) -> None:
        """Wake whoever waits for these answers, then store them in one transaction (an answer
        to no command of this desk's, or a second one, changes nothing)."""
        if not messages:
            return
        rows = []
        for message in messages:
            try:
                event = json.loads(message.body)
            except ValueError:
                continue
            cause = event.get("causation_id") if isinstance(event, dict) else None
            if not cause:
                continue
            with self._waiters_lock:
                waiter = self._waiters.get(str(cause))
                if waiter is not None:
                    waiter.answer(event)
            rows.append(
                {
                    "cause": str(cause),
                    "reply_type": event.get("type"),
                    "reply": json.dumps(event.get("payload"), ensure_ascii=False),
                    "replied_at": state.utc_now(),
                }
            )
        if rows:
            commands = state.commands
            with self.engine.begin() as connection:
                connection.execute(
                    update(commands)
                    .where(commands.c.event_id == bindparam("cause"), commands.c.reply_type.is_(None))
                    .values(
                        reply_type=bindparam("reply_type"), reply=bindparam("reply"), replied_at=bindparam("replied_at")
                    ),
                    rows,
                )
