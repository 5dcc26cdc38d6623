"""Today's worklist order and what a collector may see: pure rules, no IO.

A task comes before another when its case is in a later stage, then when it is more days
past due, then when more is owed, then when its customer's promise falls due sooner (a
task with no pending promise last), then by task id so the order is total. The worklist's
query (:func:`baitiao.desk.reads.worklist_page`) orders by the same keys in SQL (stage
follows DPD), so a page is the same rows in the same order as sorting everything with
:func:`priority_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.collections.domain import mask_name, mask_phone
from services.collections.domain.stages import STAGE_ORDER

_STAGE_RANK = {stage.value: rank for rank, stage in enumerate(STAGE_ORDER)}
_NO_PROMISE = date.max


@dataclass(frozen=True)
class WorkItem:
    task_id: str
    account_id: str
    kind: str
    stage: str
    dpd: int
    amount: Decimal
    due_by: date
    promise_due: date | None = None


def priority_key(item: WorkItem) -> tuple[int, int, Decimal, date, str]:
    return (
        -_STAGE_RANK.get(item.stage, -1),
        -item.dpd,
        -item.amount,
        item.promise_due or _NO_PROMISE,
        item.task_id,
    )


def by_priority(items: list[WorkItem]) -> list[WorkItem]:
    return sorted(items, key=priority_key)


def shown_name(name: str | None, unmasked: bool) -> str | None:
    """A customer's name as the desk shows it: masked unless the viewer may see it."""
    if name is None:
        return None
    return name if unmasked else mask_name(name)


def shown_phone(phone: str | None, unmasked: bool) -> str | None:
    if phone is None:
        return None
    return phone if unmasked else mask_phone(phone)
