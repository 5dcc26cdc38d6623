"""Who works which account, and the audit log of everything the desk showed or sent.

An account is assigned to one collector at a time (``desk_assignments``); a supervisor
assigns and reassigns. Every view of a customer's personal data and every command is a
row of ``desk_audit``: who, what, when, and on what; the detail never holds the
personal data itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from baitiao.desk import state
from baitiao.desk.access import User


def assign(engine: Engine, account_ids: Iterable[str], collector: str, by: User) -> int:
    """Give ``account_ids`` to ``collector`` (taking them from whoever had them)."""
    ids = sorted(set(account_ids))
    now = state.utc_now()
    with engine.begin() as connection:
        connection.execute(delete(state.assignments).where(state.assignments.c.account_id.in_(ids)))
        if ids:
            connection.execute(
                state.assignments.insert(),
                [
                    {"account_id": a, "collector": collector, "assigned_by": by.username, "assigned_at": now}
                    for a in ids
                ],
            )
    return len(ids)


def assigned_accounts(engine: Engine, collector: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(state.assignments.c.account_id)
                .where(state.assignments.c.collector == collector)
                .order_by(state.assignments.c.account_id)
            )
        )


def collector_of(engine: Engine, account_id: str) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(
            select(state.assignments.c.collector).where(state.assignments.c.account_id == account_id)
        )


def may_work(engine: Engine, user: User, account_id: str) -> bool:
    """A collector works only their own accounts; supervisors and operators see all."""
    return user.role != "collector" or collector_of(engine, account_id) == user.username


def audit(engine: Engine, user: User, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(state.audit_log.insert().values(audit_entry(user, action, target, detail)))


def audit_entry(user: User, action: str, target: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The audit log's row for what ``user`` did (for writing it in a transaction of one's own)."""
    return {
        "at": state.utc_now(),
        "actor": user.username,
        "role": user.role,
        "action": action,
        "target": target,
        "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
    }


def audit_entries(
    engine: Engine, *, actor: str | None = None, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    query = select(state.audit_log).order_by(state.audit_log.c.id.desc()).limit(limit)
    if actor:
        query = query.where(state.audit_log.c.actor == actor)
    if since:
        query = query.where(state.audit_log.c.at >= since)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "detail": json.loads(r.detail) if r.detail else None,
        }
        for r in rows
    ]


def audit_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(state.audit_log)) or 0)
