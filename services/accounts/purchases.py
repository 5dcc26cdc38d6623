"""``purchase.requested``: authorise a purchase against the account's standing and available limit.

Checkout asks once per purchase, so accounts takes the requests as a run (``BatchHandler``)
and spends a handful of statements on the whole run instead of four or five per request:

1. the run's accounts, read and locked in one ``SELECT ... FOR UPDATE`` in pk order (two
   runs locking the same accounts cannot deadlock); they stay ORM objects, so the principal
   a purchase adds is what the next request of the same account is judged on;
2. the first answers already given to the run's purchase ids (``command_answers``), and
   the purchase ids already stored, one ``SELECT`` each;
3. every request decided in Python, in message order, on the account as the requests
   before it left it. A purchase id answered before (stored, or earlier in the run) is a
   retry: it gets that first answer again, approved or declined, with the available limit
   it said then, and nothing is recorded twice;
4. one insert each for the new purchases, their ledger postings, their answers and the
   replies.

A run of one (the guarded retry pass) is the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts.domain import ledger
from services.accounts.domain.billing import purchase_decision
from services.accounts.ledger_book import post_many, posting_rows
from services.accounts.models import ANSWERS, Account, Purchase
from services.accounts.standing import available, borrowing_status
from shared.bus.answers import Answer, AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.clock import business_date
from shared.db import upsert
from shared.events import payloads as p
from shared.money import from_fen, to_fen

PURCHASES = Purchase.__table__
ANSWER_BOOK = AnswerBook(ANSWERS, "purchase.requested")


@dataclass(frozen=True)
class _Answer:
    """What accounts replies to one request, and whether the reply records a new purchase."""

    event_type: str
    payload: p.PurchaseApproved | p.PurchaseDeclined
    new: bool  # approved now: a purchase row, its posting and more principal owed


def _answer(account: Account | None, known_amount_fen: int | None, event: p.PurchaseRequested) -> _Answer:
    """The decision on the account as it stands now (``account`` None: unknown account).

    A purchase id recorded before its answer was kept (``known_amount_fen``: a purchase
    stored before ``command_answers`` existed) is answered approved with its recorded amount.
    """
    if known_amount_fen is not None:
        return _Answer(
            "purchase.approved",
            p.PurchaseApproved(
                purchase_id=event.purchase_id,
                account_id=event.account_id,
                amount=from_fen(known_amount_fen),
                available_limit=available(account) if account else from_fen(0),
            ),
            new=False,
        )
    decision = purchase_decision(
        borrowing_status(account) if account else None,
        available(account) if account else from_fen(0),
        event.amount,
    )
    if not decision.approved:
        return _Answer(
            "purchase.declined",
            p.PurchaseDeclined(
                purchase_id=event.purchase_id,
                account_id=event.account_id,
                amount=event.amount,
                reason=decision.reason,
            ),
            new=False,
        )
    return _Answer(
        "purchase.approved",
        p.PurchaseApproved(
            purchase_id=event.purchase_id,
            account_id=event.account_id,
            amount=event.amount,
            available_limit=decision.available_after,
        ),
        new=True,
    )


def _records(account: Account, event: p.PurchaseRequested) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``purchases`` row of an approved request and the ledger rows of its posting."""
    posted_on = business_date(event.requested_at)
    purchase = {
        "purchase_id": event.purchase_id,
        "account_pk": account.pk,
        "amount_fen": to_fen(event.amount),
        "merchant": event.merchant[:128],
        "requested_at": event.requested_at,
        "posted_on": posted_on,
    }
    entries = posting_rows(
        ledger.purchase_posted(event.amount),
        account_pk=account.pk,
        bill_pk=None,
        business_date=posted_on,
        posting_id=f"purchase:{event.purchase_id}",
    )
    return purchase, entries


def purchase_requested_batch(items: list[tuple[HandlerContext, p.PurchaseRequested]]) -> None:
    """A run of requests (one in the guarded retry pass), answered one after the other in order."""
    if not items:
        return
    session = items[0][0].session
    accounts = _lock_accounts(session, {event.account_id for _, event in items})
    ids = {event.purchase_id for _, event in items}
    answered = ANSWER_BOOK.load(session, ids)
    known = _known_amounts(session, ids)
    purchases: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    replies: list[PendingEvent] = []
    first_answers: dict[str, Answer] = {}
    for ctx, event in items:
        if event.purchase_id in answered:  # a retry: the first answer again, nothing else
            replies.append(repeat(ctx, answered[event.purchase_id]))
            continue
        account = accounts.get(event.account_id)
        answer = _answer(account, known.get(event.purchase_id), event)
        if answer.new:
            assert account is not None
            purchase, rows = _records(account, event)
            purchases.append(purchase)
            entries.extend(rows)
            account.unpaid_principal_fen += purchase["amount_fen"]  # the next request of the account sees it
        reply = ctx.reply(answer.event_type, answer.payload, event.account_id)
        replies.append(reply)
        answered[event.purchase_id] = first_answers[event.purchase_id] = Answer.of(
            reply
        )  # asked again later in the run
    upsert(session, PURCHASES, purchases, key=None)  # the accounts' new principal goes with the flush
    post_many(session, entries)
    ANSWER_BOOK.keep(session, first_answers)
    items[0][0].outbox.emit_many(session, replies)


def _lock_accounts(session: Session, account_ids: Iterable[str]) -> dict[str, Account]:
    """The run's known accounts, locked in pk order (FOR UPDATE is left out on SQLite)."""
    query = (
        select(Account)
        .where(Account.account_id.in_(sorted(account_ids)))
        .order_by(Account.pk)
        .with_for_update()
        # Read afresh: an earlier run of this transaction (a repayment's relock) may have
        # changed the ladder columns with a Core UPDATE the loaded objects do not know of.
        .execution_options(populate_existing=True)
    )
    return {account.account_id: account for account in session.scalars(query)}


def _known_amounts(session: Session, purchase_ids: Iterable[str]) -> dict[str, int]:
    """Amount (fen) of each purchase of the run already recorded, by purchase id."""
    query = select(Purchase.purchase_id, Purchase.amount_fen).where(Purchase.purchase_id.in_(sorted(purchase_ids)))
    return {purchase_id: amount_fen for purchase_id, amount_fen in session.execute(query)}
