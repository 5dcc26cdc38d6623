"""Applying events exactly once: inbox, savepoint per event, bounded retries, dead letters.

``EventApplier.apply_batch`` takes raw bodies and applies a whole batch in ONE
database transaction: the inbox is read and written set-based, each event runs
in its own savepoint so one bad event cannot undo its neighbours, and the
caller acks the batch only after the commit. That is how a consumer reaches the
transport's speed while keeping at-least-once delivery and exactly-once effects.

A command whose payload the contract refuses is answered (shared/events/rejections.py)
by the one service that answers it: its rejection goes into that service's outbox, the
message into its dead letters and its event id into its inbox, all in the batch's
transaction, so a redelivery is a duplicate and the sender is told once. The command's
other consumers ack it and record nothing: one dead letter, one answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.orm import Session

from shared import metrics
from shared.bus.faults import maybe_crash
from shared.bus.outbox import DeferredOutbox, Outbox, PendingEvent, payload_json
from shared.clock import Clock, business_date, event_time_clock
from shared.db import transaction
from shared.events.envelope import Envelope, InvalidPayload, RefusedEvent, UnreadableEvent, read_event
from shared.events.payloads import Payload
from shared.events.rejections import REJECTIONS, answered_by
from shared.events.signing import KeyRing
from shared.log import get_logger
from shared.rules import ProductRules

# One classification for consumer, relay and jobs; re-exported for the handlers.
from shared.transient import TransientFault as TransientFault, is_transient

log = get_logger(__name__)


@dataclass
class HandlerContext:
    """What a handler gets: the open transaction, the event and a way to emit replies."""

    session: Session
    envelope: Envelope
    outbox: Outbox
    rules: ProductRules
    clock: Clock

    @property
    def event_date(self) -> date:
        """The business date (Asia/Shanghai) the event happened on, for events that carry none."""
        return business_date(self.envelope.occurred_at)

    def emit(self, event_type: str, payload: Payload | dict[str, Any], aggregate_id: str) -> str:
        """Write a reply or consequence event into the outbox of this transaction."""
        event = self.reply(event_type, payload, aggregate_id)
        self.outbox.emit_many(self.session, [event])
        return event.event_id

    def reply(self, event_type: str, payload: Payload | dict[str, Any], aggregate_id: str) -> PendingEvent:
        """The event ``emit`` would write, kept back: a batch handler writes a whole run's
        replies with one ``Outbox.emit_many``."""
        return PendingEvent(
            event_type,
            aggregate_id,
            payload_json(event_type, payload),
            self.clock.now(),
            correlation_id=self.envelope.correlation_id or self.envelope.event_id,
            causation_id=self.envelope.event_id,
        )


Handler = Callable[[HandlerContext, Any], None]


@dataclass(frozen=True)
class BatchHandler:
    """A handler that takes a run of events of one type at once (set-based SQL).

    For the hot event types (the nightly flood of ``account.delinquency.updated``):
    one statement for the whole run instead of one per event. Guarded retries call
    it with runs of one.
    """

    fn: Callable[[list[tuple[HandlerContext, Any]]], None]


def _call(handler: "Handler | BatchHandler", items: list[tuple[HandlerContext, Any]]) -> None:
    if isinstance(handler, BatchHandler):
        handler.fn(items)
        return
    for ctx, payload in items:
        handler(ctx, payload)


@dataclass(frozen=True)
class Refusal:
    """What stands for the payload of a command this service answers with its rejection."""

    reply_type: str
    reply: dict[str, Any]
    reason: str  # the dead letter's


def _runs_by_handler(todo: list[Any], handlers: dict[str, Any], split: bool) -> list[list[Any]]:
    """Consecutive events of one batch-handled type form one run; everything else runs alone
    (a refused command too)."""
    runs: list[list[Any]] = []
    for item in todo:
        event_type = item[1].type
        batchable = (
            not split and not isinstance(item[2], Refusal) and isinstance(handlers.get(event_type), BatchHandler)
        )
        if batchable and runs and runs[-1][0][1].type == event_type and not isinstance(runs[-1][0][2], Refusal):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class _HandlerFailed(Exception):
    """A handler failed in the optimistic (savepoint-free) pass: redo the batch guarded."""


@dataclass
class Delivery:
    """One message as received, with how often we already tried it."""

    body: bytes
    message: Any = None  # the kombu message it came in, acked by the consumer after the commit
    attempts: int = 0
    last_error: str = ""


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0  # refused commands answered with their rejection (and dead-lettered)
    dead_lettered: int = 0
    ack: list[Delivery] = field(default_factory=list)
    retry: list[Delivery] = field(default_factory=list)


@dataclass(frozen=True)
class BusTables:
    outbox: Table
    inbox: Table
    dead_letters: Table


class EventApplier:
    """Applies batches of raw messages for one service."""

    def __init__(
        self,
        service: str,
        engine: Engine,
        tables: BusTables,
        handlers: dict[str, Handler | BatchHandler],
        rules: ProductRules,
        clock: Clock,
        max_attempts: int = 5,
        event_time: bool = False,
        trust: KeyRing | None = None,
    ):
        """``trust``: the ring a message must be signed with (its type's owner's key). Every
        worker passes its own (shared/celery_app.py); None is for tests that feed the
        applier directly, in-process."""
        self.service = service
        self.engine = engine
        self.tables = tables
        self.handlers = handlers
        self.rules = rules
        self.clock = clock
        self.max_attempts = max_attempts
        self.event_time = event_time  # simulated time: a handler's now is its event's occurred_at
        self.queue = f"{service}.events"  # where its dead letters are replayed to
        self.answers = answered_by(service)  # the commands whose refusal this service answers
        self.trust = trust

    def apply_batch(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        """Apply a batch in one transaction. Raises on a transient fault (nothing committed).

        Optimistic first: no savepoints, since a savepoint per event costs two
        round trips and nearly every event succeeds. If any handler fails, the
        whole transaction is rolled back and the batch is applied again with a
        savepoint around each event, so only the culprit is retried or
        dead-lettered.
        """
        readable: list[tuple[Delivery, Envelope, Payload | Refusal]] = []
        unreadable: list[tuple[Delivery, dict[str, Any]]] = []
        left: list[Delivery] = []
        refused: list[RefusedEvent] = []
        for delivery in deliveries:
            try:
                envelope, payload = read_event(delivery.body, self.trust)
            except InvalidPayload as exc:
                refusal = self._refusal(exc)
                if refusal is not None:
                    readable.append((delivery, exc.envelope, refusal))
                elif exc.envelope.type in REJECTIONS and exc.envelope.type not in self.answers:
                    left.append(delivery)  # its answering service records it, once
                else:
                    unreadable.append(
                        (delivery, self._dead_letter_row(delivery, exc.reason, exc.event_id, exc.event_type))
                    )
                continue
            except UnreadableEvent as exc:
                if isinstance(exc, RefusedEvent):
                    refused.append(exc)
                unreadable.append((delivery, self._dead_letter_row(delivery, exc.reason, exc.event_id, exc.event_type)))
                continue
            readable.append((delivery, envelope, payload))
        try:
            outcome = self._apply(readable, unreadable, left, guarded=False)
        except _HandlerFailed:
            outcome = self._apply(readable, unreadable, left, guarded=True)
        for not_believed in refused:  # committed to the dead letters: now they count
            metrics.EVENTS_REFUSED.labels(self.service, not_believed.refusal, not_believed.event_type or "").inc()
        return outcome

    def _refusal(self, exc: InvalidPayload) -> Refusal | None:
        """The rejection this service answers a refused command with; None when it does not
        answer that command, or the command's business id cannot be read."""
        rejection = self.answers.get(exc.envelope.type)
        if rejection is None:
            return None
        reply = rejection.reply_payload(exc.envelope.payload, exc.errors)
        return None if reply is None else Refusal(rejection.reply, reply, exc.reason)

    def _apply(
        self,
        readable: list[tuple[Delivery, Envelope, Payload | Refusal]],
        unreadable: list[tuple[Delivery, dict[str, Any]]],
        left: list[Delivery],
        guarded: bool,
    ) -> BatchOutcome:
        outcome = BatchOutcome(ack=[d for d, _ in unreadable] + left, ignored=len(left))
        dead = [row for _, row in unreadable]
        outbox = DeferredOutbox(self.tables.outbox)
        with transaction(self.engine) as session:
            todo = self._not_yet_handled(session, readable, outcome)
            done: list[tuple[Delivery, Envelope]] = []
            for run in _runs_by_handler(todo, self.handlers, split=guarded):
                handler = self.handlers.get(run[0][1].type)
                if isinstance(run[0][2], Refusal):
                    self._refuse(session, outbox, run[0], dead)
                    outcome.rejected += 1
                elif handler is None:
                    outcome.ignored += len(run)
                elif not self._apply_run(session, outbox, handler, run, outcome, dead, guarded):
                    continue
                else:
                    outcome.applied += len(run)
                    for _, envelope, _ in run:
                        metrics.EVENTS_HANDLED.labels(self.service, envelope.type).inc()
                done.extend((delivery, envelope) for delivery, envelope, _ in run)
            outbox.write(session)
            if done:
                now = self.clock.now()
                session.execute(
                    insert(self.tables.inbox),
                    [{"event_id": e.event_id, "type": e.type, "handled_at": now} for _, e in done],
                )
            if dead:
                session.execute(insert(self.tables.dead_letters), dead)
            maybe_crash("before_commit", [(env.type, env.aggregate_id) for _, env, _ in readable])
        maybe_crash("after_commit", [(env.type, env.aggregate_id) for _, env, _ in readable])
        outcome.ack.extend(delivery for delivery, _ in done)
        self._count(outcome, dead)
        return outcome

    def _refuse(
        self, session: Session, outbox: DeferredOutbox, item: tuple[Delivery, Envelope, Any], dead: list[dict[str, Any]]
    ) -> None:
        """Answer a refused command with its rejection and keep the message for the operator.

        The rejection is about what the command was about (its envelope's aggregate id).
        """
        delivery, envelope, refusal = item
        ctx = HandlerContext(session, envelope, outbox, self.rules, self._clock_for(envelope))
        outbox.emit_many(session, [ctx.reply(refusal.reply_type, refusal.reply, envelope.aggregate_id)])
        dead.append(self._dead_letter_row(delivery, refusal.reason, envelope.event_id, envelope.type))
        log.warning(
            "command_refused",
            service=self.service,
            event_id=envelope.event_id,
            type=envelope.type,
            reply=refusal.reply_type,
            fields=[e["loc"] for e in refusal.reply["errors"]],
        )

    def _not_yet_handled(
        self, session: Session, readable: list[tuple[Delivery, Envelope, Any]], outcome: BatchOutcome
    ) -> list[tuple[Delivery, Envelope, Any]]:
        """Drop (and ack) what the inbox already holds, and repeats inside the batch."""
        seen = self._already_handled(session, [env.event_id for _, env, _ in readable])
        todo = []
        for item in readable:
            if item[1].event_id in seen:
                outcome.duplicates += 1
                outcome.ack.append(item[0])
                continue
            seen.add(item[1].event_id)
            todo.append(item)
        return todo

    def _count(self, outcome: BatchOutcome, dead: list[dict[str, Any]]) -> None:
        outcome.dead_lettered = len(dead)
        if outcome.duplicates:
            metrics.EVENTS_DUPLICATE.labels(self.service).inc(outcome.duplicates)
        if dead:
            metrics.DEAD_LETTERS.labels(self.service).inc(len(dead))

    def _clock_for(self, envelope: Envelope) -> Clock:
        return event_time_clock(envelope.occurred_at) if self.event_time else self.clock

    def _apply_run(
        self,
        session: Session,
        outbox: DeferredOutbox,
        handler: Handler | BatchHandler,
        run: list[tuple[Delivery, Envelope, Payload]],
        outcome: BatchOutcome,
        dead: list[dict[str, Any]],
        guarded: bool,
    ) -> bool:
        """Run a handler on a run of events (one event when guarded, in a savepoint).

        False when it failed: the event is retried later or dead-lettered.
        """
        items = [
            (HandlerContext(session, env, outbox, self.rules, self._clock_for(env)), payload) for _, env, payload in run
        ]
        mark = outbox.mark()
        try:
            if not guarded:
                _call(handler, items)
                return True
            with session.begin_nested():
                _call(handler, items)
            return True
        except Exception as exc:  # noqa: BLE001 - a handler bug must not stop the worker
            outbox.forget_since(mark)  # its savepoint is rolled back: so are its events
            if is_transient(exc):
                raise
            if not guarded:
                raise _HandlerFailed from exc
            delivery, envelope, _ = run[0]
            delivery.attempts += 1
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            metrics.EVENTS_FAILED.labels(self.service, envelope.type).inc()
            log.warning(
                "handler_failed",
                service=self.service,
                event_id=envelope.event_id,
                correlation_id=envelope.correlation_id,
                type=envelope.type,
                attempts=delivery.attempts,
                error=delivery.last_error[:300],
            )
            if delivery.attempts >= self.max_attempts:
                reason = f"handler_failed after {delivery.attempts} attempts: {delivery.last_error}"
                dead.append(self._dead_letter_row(delivery, reason, envelope.event_id, envelope.type))
                outcome.ack.append(delivery)
            else:
                outcome.retry.append(delivery)
            return False

    def dead_letter_now(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter one message in a transaction of its own (a poison message)."""
        event_id = event_type = None
        try:
            data = json.loads(delivery.body)
            event_id, event_type = data.get("event_id"), data.get("type")
        except (ValueError, AttributeError):
            pass
        with transaction(self.engine) as session:
            session.execute(
                insert(self.tables.dead_letters), [self._dead_letter_row(delivery, reason, event_id, event_type)]
            )
        metrics.DEAD_LETTERS.labels(self.service).inc()

    def _already_handled(self, session: Session, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        inbox = self.tables.inbox
        return set(session.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(event_ids))))

    def _dead_letter_row(
        self, delivery: Delivery, reason: str, event_id: str | None, event_type: str | None
    ) -> dict[str, Any]:
        log.error("dead_letter", service=self.service, event_id=event_id, type=event_type, reason=reason[:300])
        return {
            "queue": self.queue,
            # A sender's own id or type may be anything: cut to the columns (the body keeps it whole).
            "event_id": event_id[:64] if isinstance(event_id, str) else None,
            "type": event_type[:64] if isinstance(event_type, str) else None,
            "reason": reason,
            "body": delivery.body.decode("utf-8", errors="replace"),
            "attempts": max(delivery.attempts, 1),
            "created_at": self.clock.now(),
        }
