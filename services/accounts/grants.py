"""``credit.line.granted``: open the credit lines of a run at once.

Lines are granted in bulk (10,000 at once took 18 s on PostgreSQL at one grant per
handler call), so accounts takes the grants as a run (``BatchHandler``) and spends three
statements on the whole run instead of four per grant:

1. one ``SELECT`` of the stored lines that either are a line of the run (granted before:
   nothing changes, and the grant gets its first ``credit.line.opened`` again, rebuilt
   from the line as opened) or share an identity with one (their lock-ladder levels);
2. one insert of the new lines, in message order;
3. one insert of their ``credit.line.opened`` replies (``Outbox.emit_many``).

A new line of an identity whose other lines are restricted starts with the highest of
their own levels as its ``linked_level``. Lines opened earlier in the same run start at
level 0, so they never raise that maximum: the stored lines decide it, as they do when
the grants are applied one by one. A run of one (the guarded retry pass) is the
single-event case.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.accounts.models import Account
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.db import upsert
from shared.events import payloads as p
from shared.money import from_fen, to_fen

ACCOUNTS = Account.__table__


def credit_line_granted_batch(items: list[tuple[HandlerContext, p.CreditLineGranted]]) -> None:
    """Open every line of the run not opened before (stored, or earlier in the run), in order."""
    if not items:
        return
    session = items[0][0].session
    opened, levels = _stored_lines(session, items)
    new_lines: list[dict[str, Any]] = []
    replies: list[PendingEvent] = []
    for ctx, event in items:
        if event.account_id in opened:  # granted before: the line stays as it is, its first answer again
            first = opened[event.account_id]
            replies.append(
                ctx.reply(
                    "credit.line.opened",
                    p.CreditLineOpened(
                        account_id=event.account_id,
                        credit_limit=first.credit_limit,
                        opened_on=first.opened_on,
                    ),
                    event.account_id,
                )
            )
            continue
        opened[event.account_id] = p.CreditLineOpened(
            account_id=event.account_id, credit_limit=event.credit_limit, opened_on=event.opened_on
        )
        new_lines.append(_new_line(event, linked_level=levels.get(event.identity_hash, 0)))
        replies.append(ctx.reply("credit.line.opened", opened[event.account_id], event.account_id))
    upsert(session, ACCOUNTS, new_lines, key=None)  # a line opened meanwhile elsewhere: the run retries
    items[0][0].outbox.emit_many(session, replies)


def _stored_lines(
    session: Session, items: list[tuple[HandlerContext, p.CreditLineGranted]]
) -> tuple[dict[str, p.CreditLineOpened], dict[str, int]]:
    """The run's lines already opened (with the answer their grant got: the limit granted,
    whatever a cut did to it since), and the highest own level of each identity's stored lines."""
    account_ids = {event.account_id for _, event in items}
    identities = {event.identity_hash for _, event in items}
    query = select(
        Account.account_id, Account.identity_hash, Account.level, Account.granted_limit_fen, Account.opened_on
    ).where(or_(Account.account_id.in_(sorted(account_ids)), Account.identity_hash.in_(sorted(identities))))
    opened: dict[str, p.CreditLineOpened] = {}
    levels: dict[str, int] = {}
    # autoflush: this transaction's lines too
    for account_id, identity_hash, level, granted_fen, opened_on in session.execute(query):
        if account_id in account_ids:
            opened[account_id] = _opened(account_id, granted_fen, opened_on)
        if identity_hash in identities:
            levels[identity_hash] = max(levels.get(identity_hash, 0), level)
    return opened, levels


def _opened(account_id: str, granted_fen: int, opened_on: date) -> p.CreditLineOpened:
    return p.CreditLineOpened(account_id=account_id, credit_limit=from_fen(granted_fen), opened_on=opened_on)


def _new_line(event: p.CreditLineGranted, linked_level: int) -> dict[str, Any]:
    """The ``accounts`` row of a line just granted: nothing owed, no restriction of its own."""
    limit_fen = to_fen(event.credit_limit)
    return {
        "account_id": event.account_id,
        "customer_id": event.customer_id,
        "identity_hash": event.identity_hash,
        "opened_on": event.opened_on,
        "granted_limit_fen": limit_fen,
        "credit_limit_fen": limit_fen,
        "limit_cut": False,
        "unpaid_principal_fen": 0,
        "credit_balance_fen": 0,
        "status": "open",
        "level": 0,
        "linked_level": linked_level,
        "max_dpd": 0,
        "last_overdue_on": None,
        "active_plan_id": None,
        "monthly_income_fen": to_fen(event.monthly_income) if event.monthly_income is not None else None,
    }
