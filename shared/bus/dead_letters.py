"""The dead-letter store: list what could not be applied, replay it, or discard it.

Replay publishes the original body again straight to the service's own queue
(kombu's default exchange routes by queue name), so that only the service that
failed sees it again. A replayed event that was in fact applied meanwhile is
absorbed by the inbox. Discard retires a letter on the record instead (when, and the
operator's reason): it is never replayed, and listings hide it unless asked.

What an operator reads of a letter (:func:`masked_view`) has its personal data masked
by the very processor that masks the logs (:func:`shared.log.mask_personal_data`):
names, phones and identity hashes in the body, phone numbers anywhere in the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kombu.connection import Connection
from kombu.messaging import Producer
from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.orm import Session

from shared.bus.topology import declare_topology
from shared.db import transaction
from shared.log import mask_personal_data


@dataclass(frozen=True)
class DeadLetter:
    id: int
    queue: str
    event_id: str | None
    type: str | None
    reason: str
    body: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    discarded_at: datetime | None = None
    discard_reason: str | None = None

    @property
    def state(self) -> str:
        """open (waiting for an operator), replayed or discarded."""
        if self.discarded_at is not None:
            return "discarded"
        return "replayed" if self.replayed_at is not None else "open"


class LetterRetired(ValueError):
    """The letter was discarded (nothing may replay it), or is already retired."""


def list_dead_letters(
    engine: Engine, table: Table, include_retired: bool = False, limit: int = 100
) -> list[DeadLetter]:
    """The newest letters first; only the open ones unless ``include_retired``."""
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if not include_retired:
        query = query.where(table.c.replayed_at.is_(None), table.c.discarded_at.is_(None))
    with transaction(engine) as session:
        return [DeadLetter(**row._mapping) for row in session.execute(query)]


def count_open_letters(engine: Engine, table: Table) -> int:
    """Letters neither replayed nor discarded."""
    with transaction(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.replayed_at.is_(None), table.c.discarded_at.is_(None))
            )
            or 0
        )


def get_dead_letter(engine: Engine, table: Table, letter_id: int) -> DeadLetter:
    with transaction(engine) as session:
        return _locked(session, table, letter_id, lock=False)


def _locked(session: Session, table: Table, letter_id: int, lock: bool = True) -> DeadLetter:
    query = select(table).where(table.c.id == letter_id)
    row = session.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise LookupError(f"no dead letter {letter_id}")
    return DeadLetter(**row._mapping)


def replay_dead_letter(
    engine: Engine, table: Table, letter_id: int, connection: Connection, now: datetime
) -> DeadLetter:
    """Publish a dead letter's original body to its queue again and stamp it replayed.

    Refuses a discarded letter (``LetterRetired``): its discard is the operator's word
    that it must not be applied."""
    with transaction(engine) as session:
        letter = _locked(session, table, letter_id)
        if letter.discarded_at is not None:
            raise LetterRetired(
                f"dead letter {letter_id} was discarded at {letter.discarded_at:%Y-%m-%d %H:%M:%S} "
                f"({letter.discard_reason}); it is not replayed"
            )
        declare_topology(connection)
        producer = Producer(connection.channel())
        producer.publish(
            letter.body.encode("utf-8"),
            exchange="",
            routing_key=letter.queue,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        session.execute(update(table).where(table.c.id == letter_id).values(replayed_at=now))
    return letter


def discard_dead_letter(engine: Engine, table: Table, letter_id: int, reason: str, now: datetime) -> DeadLetter:
    """Retire an open letter on the record: when, and why (the operator's words)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a discard needs a reason")
    with transaction(engine) as session:
        letter = _locked(session, table, letter_id)
        if letter.state != "open":
            raise LetterRetired(f"dead letter {letter_id} is already {letter.state}")
        session.execute(update(table).where(table.c.id == letter_id).values(discarded_at=now, discard_reason=reason))
    return DeadLetter(**{**letter.__dict__, "discarded_at": now, "discard_reason": reason})


def masked_view(letter: DeadLetter) -> dict[str, Any]:
    """A letter as an operator may read it: every field, personal data masked, the body
    as its JSON (or its masked text when it is not JSON)."""
    try:
        body: Any = json.loads(letter.body)
    except ValueError:
        body = letter.body
    return {
        **letter.__dict__,
        "state": letter.state,
        "body": mask_tree(body),
        "reason": mask_tree(letter.reason),
        "discard_reason": mask_tree(letter.discard_reason),
    }  # ids and times stay as stored


def mask_tree(value: Any) -> Any:
    """Mask personal data at every depth of a JSON-like value with the logs' processor
    (which masks one level: personal keys, and phone numbers inside any string)."""
    if isinstance(value, dict):
        return mask_personal_data(None, "", {key: mask_tree(item) for key, item in value.items()})
    if isinstance(value, list):
        return [mask_tree(item) for item in value]
    if isinstance(value, str):
        return mask_personal_data(None, "", {"text": value})["text"]
    return value
