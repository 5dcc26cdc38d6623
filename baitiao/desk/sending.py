"""Sending a desk command: kept in ``desk_commands``, audited, then published.

The row comes first so that an answer arriving at once finds its command; a command the
broker refused stays with no answer (and its audit entry says it was attempted).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from baitiao.desk import state
from baitiao.desk.access import User
from baitiao.desk.commands import PRODUCERS, business_id, command_envelope
from baitiao.desk.context import Desk
from baitiao.desk.worklists import audit_entry
from shared.events.payloads import Payload


class BusUnavailable(RuntimeError):
    """This desk was started without a broker: it reads, it does not send."""


def send_command(desk: Desk, user: User, event_type: str, payload: Payload, *, expect_reply: bool = False) -> str:
    """Publish ``payload`` as ``event_type``; returns the event id. ``expect_reply``: the
    caller will wait for the answer (register before publishing, so none is missed)."""
    if desk.bus is None:
        raise BusUnavailable("this desk has no broker: commands cannot be sent")
    envelope = command_envelope(event_type, payload, desk.now())
    event_id = str(envelope["event_id"])
    with desk.engine.begin() as connection:  # the command and its audit entry: one commit
        connection.execute(
            state.commands.insert().values(
                event_id=event_id,
                type=event_type,
                business_id=business_id(event_type, payload),
                aggregate_id=envelope["aggregate_id"],
                actor=user.username,
                sent_at=state.utc_now(),
            )
        )
        connection.execute(
            state.audit_log.insert().values(
                audit_entry(
                    user,
                    f"command:{event_type}",
                    str(envelope["aggregate_id"]),
                    {"event_id": event_id, "business_id": business_id(event_type, payload)},
                )
            )
        )
    if expect_reply:
        desk.bus.expect(event_id)
    desk.bus.publish(envelope, PRODUCERS[event_type])
    return event_id


def command_record(desk: Desk, event_id: str) -> dict[str, Any] | None:
    """A command the desk sent and its answer so far."""
    with desk.engine.connect() as connection:
        row = connection.execute(select(state.commands).where(state.commands.c.event_id == event_id)).first()
    if row is None:
        return None
    return {
        "event_id": row.event_id,
        "type": row.type,
        "business_id": row.business_id,
        "aggregate_id": row.aggregate_id,
        "actor": row.actor,
        "sent_at": row.sent_at.isoformat(),
        "reply_type": row.reply_type,
        "reply": json.loads(row.reply) if row.reply else None,
        "replied_at": row.replied_at.isoformat() if row.replied_at else None,
    }
