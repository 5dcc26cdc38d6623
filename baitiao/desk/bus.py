"""The desk's link to the bus: one publishing connection, one listener for the replies.

Commands are published through :func:`baitiao.publishing.publish_envelope` and recorded
in ``desk_commands``; the listener's queue is bound to the answers of
:data:`baitiao.desk.commands.REPLIES` and stores the first answer each desk command caused
(matched by ``causation_id``), so a command's outcome can be read afterwards. Whoever
waits for an answer (the checkout door) is woken as it arrives.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from kombu import Consumer, Queue
from kombu.entity import binding
from sqlalchemy import Engine, update

from baitiao.desk import state
from baitiao.desk.commands import REPLIES
from baitiao.publishing import publish_envelope
from shared.broker import broker_connection
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology
from shared.events.signing import KeyRing
from shared.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class _Waiter:
    ready: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None


class DeskBus:
    """Publishes the desk's commands and hears their answers (start, then stop)."""

    def __init__(self, broker_url: str, engine: Engine, ring: KeyRing, settings: Settings | None = None):
        self.broker_url = broker_url
        self.settings = settings  # its TLS files, for a rediss:// broker (default: the environment's)
        self.engine = engine
        self.ring = ring  # the desk signs its commands as their producer (collectors' desk, ...)
        self._publishing = broker_connection(broker_url, settings, connect_timeout=5)
        self._publish_lock = threading.Lock()
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
        with self._publish_lock:
            event_id = publish_envelope(self._publishing, envelope, producer, self.ring, declare=not self._declared)
            self._declared = True
        return event_id

    def expect(self, event_id: str) -> None:
        """Announce a wait for the answer to ``event_id`` (before publishing it)."""
        with self._waiters_lock:
            self._waiters[event_id] = _Waiter()

    def wait(self, event_id: str, timeout: float) -> dict[str, Any] | None:
        """The answer to ``event_id`` if it arrives within ``timeout`` seconds."""
        with self._waiters_lock:
            waiter = self._waiters.get(event_id)
        if waiter is None:
            return None
        waiter.ready.wait(timeout)
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
                    self.queue(connection.default_channel).declare()
                    with Consumer(connection, [self.queue], callbacks=[self._on_message], accept=["json"]):
                        self._listening.set()
                        while not self._stop.is_set():
                            try:
                                connection.drain_events(timeout=0.5)
                            except TimeoutError:
                                continue
            except Exception as exc:  # noqa: BLE001 - the broker went away: connect again
                self._listening.clear()
                log.warning("desk_listener_reconnecting", error=str(exc)[:200])
                self._stop.wait(1.0)

    def _on_message(self, body: Any, message: Any) -> None:
        try:
            event = body if isinstance(body, dict) else json.loads(body)
            cause = event.get("causation_id")
            if cause:
                self._answered(str(cause), event)
        finally:
            message.ack()

    def _answered(self, cause: str, event: dict[str, Any]) -> None:
        with self._waiters_lock:
            waiter = self._waiters.get(cause)
        if waiter is not None and waiter.reply is None:
            waiter.reply = event
            waiter.ready.set()
        with self.engine.begin() as connection:
            connection.execute(
                update(state.commands)
                .where(state.commands.c.event_id == cause, state.commands.c.reply_type.is_(None))
                .values(
                    reply_type=event.get("type"),
                    reply=json.dumps(event.get("payload"), ensure_ascii=False),
                    replied_at=state.utc_now(),
                )
            )
