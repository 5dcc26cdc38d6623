"""What both collections jobs' slices work with: the chain's share of the cases, the
events of a slice written with one insert, the instant the day's plan is made, the
namespace of the ids a contact or task is given (the same on every re-run).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session

from shared.bus.outbox import PendingEvent, payload_json
from shared.clock import at_local
from shared.events import payloads as p
from shared.jobs import JobContext


MESSAGE_ID_NAMESPACE = uuid.UUID("9a4d8d4e-3c1b-4f7e-9a55-6c0f1f3e2b10")


def window_start(ctx: JobContext) -> datetime:
    """The opening of the business date's contact window (RULES 6.4)."""
    return at_local(ctx.business_date, ctx.rules.collections.compliance.window_start)


def planning_instant(ctx: JobContext) -> datetime:
    """When the day's plan is made: the --at time when given, else the window's opening."""
    return ctx.instant if ctx.at else window_start(ctx)


def in_share(ctx: JobContext, case_pk: Any) -> list[Any]:
    """The condition that keeps a partitioned chain to its share of the accounts
    (``JobContext.partition``: the case pk modulo the count); none for the whole run.

    Everything either job decides for an account reads only that account's rows (its
    case, bills, promises, tasks and contact history), so the shares are independent."""
    if ctx.partition is None:
        return []
    index, count = ctx.partition
    return [func.coalesce(case_pk, 0) % count == index]


class BufferedEmit:
    """An Emit that keeps the events and writes them with one insert (in emission order)."""

    def __init__(self, at: datetime):
        self.at = at
        self.events: list[PendingEvent] = []

    def __call__(self, event_type: str, payload: p.Payload, aggregate_id: str) -> str:
        event = PendingEvent(event_type, aggregate_id, payload_json(event_type, payload), self.at)
        self.events.append(event)
        return event.event_id

    def flush(self, ctx: JobContext, session: Session) -> None:
        if self.events:
            ctx.outbox.emit_many(session, self.events)
            self.events = []
