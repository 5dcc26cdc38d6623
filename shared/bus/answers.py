"""The answers a service gave to commands, kept by business id: what a retried command gets again.

An outside system that retries a command (a gateway that heard nothing back) sends the
same business id (``payment_id``, ``purchase_id``, ``offer_id``, ``request_id``) under a
new ``event_id``. The inbox does not know that event id, so the handler sees the command
again; it must not act twice, and it must not stay silent either. So the first answer's
type and payload are kept here, keyed by (command type, business id), and a retry gets
exactly that answer again: a new ``event_id``, ``causation_id`` the retry's event id.

The table lives in each service's database beside its business tables
(``add_answers_table``); the handlers read a run's answers in one ``SELECT`` and write
the new ones in one insert, so a run of commands costs two statements more, not two per
command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, insert, select
from sqlalchemy.orm import Session

from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent


def add_answers_table(metadata: MetaData) -> Table:
    """Declare ``command_answers`` on a service's MetaData (so Alembic migrates it)."""
    return Table(
        "command_answers",
        metadata,
        Column("command", String(64), primary_key=True),  # the command's event type
        Column("business_id", String(64), primary_key=True),
        Column("answer_type", String(64), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("payload", Text, nullable=False),  # JSON, exactly as first emitted
    )


@dataclass(frozen=True)
class Answer:
    """One answer as it went out the first time."""

    type: str
    aggregate_id: str
    payload: dict[str, Any]

    @classmethod
    def of(cls, event: PendingEvent) -> "Answer":
        return cls(event.type, event.aggregate_id, event.payload)


def repeat(ctx: HandlerContext, answer: Answer) -> PendingEvent:
    """The answer again for the retry ``ctx`` handles: the same type and payload (not
    validated again: it is what went out), a new event id, caused by the retry."""
    envelope = ctx.envelope
    return PendingEvent(
        answer.type,
        answer.aggregate_id,
        answer.payload,
        ctx.clock.now(),
        correlation_id=envelope.correlation_id or envelope.event_id,
        causation_id=envelope.event_id,
    )


class AnswerBook:
    """The answers of one command type in one service's ``command_answers`` table."""

    def __init__(self, table: Table, command: str):
        self.table = table
        self.command = command

    def load(self, session: Session, business_ids: Iterable[str]) -> dict[str, Answer]:
        """The answers already given to these business ids (autoflush: this transaction's too)."""
        ids = sorted(set(business_ids))
        if not ids:
            return {}
        t = self.table
        query = select(t.c.business_id, t.c.answer_type, t.c.aggregate_id, t.c.payload).where(
            t.c.command == self.command, t.c.business_id.in_(ids)
        )
        return {
            row.business_id: Answer(row.answer_type, row.aggregate_id, json.loads(row.payload))
            for row in session.execute(query)
        }

    def find(self, session: Session, business_id: str) -> Answer | None:
        return self.load(session, [business_id]).get(business_id)

    def answer(self, ctx: HandlerContext, business_id: str, events: list[PendingEvent]) -> None:
        """Answer one command: keep its first event as the answer a retry gets again, and
        emit all of them."""
        self.keep(ctx.session, {business_id: Answer.of(events[0])})
        ctx.outbox.emit_many(ctx.session, events)

    def keep(self, session: Session, answers: dict[str, Answer]) -> None:
        """Record the first answers of a run (one insert)."""
        if not answers:
            return
        session.execute(
            insert(self.table),
            [
                {
                    "command": self.command,
                    "business_id": business_id,
                    "answer_type": a.type,
                    "aggregate_id": a.aggregate_id,
                    "payload": json.dumps(a.payload, ensure_ascii=False, separators=(",", ":")),
                }
                for business_id, a in answers.items()
            ],
        )
