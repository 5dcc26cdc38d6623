"""Repayments (RULES section 4): validate, allocate, apply as of ``paid_at``, post, cure.

A repayment takes effect on the local date P of its ``paid_at``, after the close
of P. When closes of later dates already ran (a gateway's late notice), the
bills' dues are first taken back to what they were as of P, the money is
allocated as of P (so the grace rule is judged on P), and the penalty those
later closes charged on the principal it repaid is reversed. The pure rules are
in ``domain/allocation.py``; this module loads rows, calls them and saves.

A payment id is applied once. Sent again under a new event id (a gateway's retry), it
gets its first answer again (``repayment.applied`` or ``repayment.rejected``, the same
payload, kept in ``command_answers``) and changes nothing; so does a retry in the same
run as its original.

Its length: taking the dues back to P, allocating, reversing later closes and relocking
are one application of a payment in one transaction; the run handler and the credit
balance of a new statement (``apply_credit_balance``) both apply money through it whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from services.accounts.domain import ledger
from services.accounts.domain.allocation import (
    LATE_FEE,
    PENALTY_INTEREST,
    PRINCIPAL,
    Allocation,
    BillDue,
    CloseAccrual,
    allocate_repayment,
    backdated_penalty_reversal,
    dues_as_of,
)
from services.accounts.job_lease import last_done
from services.accounts.ledger_book import post, postings_held
from services.accounts.models import ANSWERS, Account, Bill, BureauMark, DailyAccrual, PlanProjection, Repayment
from services.accounts.restrictions import (
    ACCOUNT_COLUMNS,
    AccountRow,
    RestrictionWriter,
    account_row,
    current_max_dpd,
    relink_identities,
)
from shared.bus.answers import Answer, AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.bus.outbox import Outbox, PendingEvent
from shared.clock import business_date
from shared.events import payloads as p
from shared.money import FEN, ZERO, fen_str, from_fen, to_fen
from shared.rules import ProductRules

ANSWER_BOOK = AnswerBook(ANSWERS, "repayment.received")


def rejection_reason(account: Account | None, event: p.RepaymentReceived) -> str | None:
    """Why a repayment cannot be applied (nothing changes then), or None."""
    if account is None:
        return "unknown_account"
    if event.currency != "CNY":
        return "unsupported_currency"
    if not event.amount.is_finite() or event.amount <= 0:
        return "non_positive_amount"
    if event.amount != event.amount.quantize(FEN):
        return "too_many_decimals"
    return None


def _closes_after(session: Session, bill_pks: list[int], paid_on: date) -> dict[int, list[CloseAccrual]]:
    """The accrual history of closes dated after ``paid_on`` (empty for an on-time notice)."""
    rows = session.execute(
        select(DailyAccrual, Bill.bureau_marked_on)
        .join(Bill, Bill.pk == DailyAccrual.bill_pk)
        .where(DailyAccrual.bill_pk.in_(bill_pks), DailyAccrual.business_date > paid_on)
        .order_by(DailyAccrual.business_date)
    ).all()
    closes: dict[int, list[CloseAccrual]] = {}
    for accrual, marked_on in rows:
        closes.setdefault(accrual.bill_pk, []).append(
            CloseAccrual(
                close_date=accrual.business_date,
                unpaid_principal=from_fen(accrual.basis_fen),
                penalty=from_fen(accrual.penalty_fen),
                late_fee=from_fen(accrual.late_fee_fen),
                bureau_mark=marked_on == accrual.business_date,
            )
        )
    return closes


def _due_now(bill: Bill) -> BillDue:
    return BillDue(
        bill.bill_id,
        bill.due_date,
        from_fen(bill.unpaid_penalty_fen),
        from_fen(bill.unpaid_late_fee_fen),
        from_fen(bill.unpaid_principal_fen),
    )


def _reverse_later_closes(
    session: Session,
    bill: Bill,
    closes: list[CloseAccrual],
    paid_on: date,
    principal_repaid: Decimal,
    rules: ProductRules,
) -> None:
    """Undo what closes after ``paid_on`` charged on the principal this payment repaid."""
    reversal = backdated_penalty_reversal(closes, paid_on, principal_repaid, rules.overdue)
    for close in reversal.per_close:
        session.execute(
            update(DailyAccrual)
            .where(DailyAccrual.bill_pk == bill.pk, DailyAccrual.business_date == close.close_date)
            .values(
                penalty_fen=DailyAccrual.penalty_fen - to_fen(close.penalty),
                late_fee_fen=DailyAccrual.late_fee_fen - to_fen(close.late_fee),
            )
        )
    repaid_fen = to_fen(principal_repaid)
    session.execute(
        update(DailyAccrual)
        .where(DailyAccrual.bill_pk == bill.pk, DailyAccrual.business_date > paid_on)
        .values(basis_fen=DailyAccrual.basis_fen - repaid_fen)
    )
    penalty, fee = to_fen(reversal.penalty_reversed), to_fen(reversal.late_fee_reversed)
    bill.unpaid_penalty_fen -= penalty
    bill.penalty_charged_fen -= penalty
    bill.unpaid_late_fee_fen -= fee
    bill.late_fee_charged_fen -= fee
    if penalty or fee:
        post(
            session,
            ledger.backdated_reversal_posted(reversal),
            account_pk=bill.account_pk,
            bill_pk=bill.pk,
            business_date=paid_on,
            posting_id=f"reversal:{bill.bill_id}:{paid_on.isoformat()}:{penalty}:{fee}",
        )
    if reversal.bureau_mark_withdrawn:
        bill.bureau_marked_on = None
        session.execute(delete(BureauMark).where(BureauMark.bill_pk == bill.pk))


def _refund_overreversal(session: Session, bill: Bill, paid_on: date, posting_id: str) -> int:
    """Charges reversed beyond what was still unpaid (a later payment, applied before this
    late notice, had paid them) go back to the customer; returns the fen refunded."""
    penalty, fee = max(0, -bill.unpaid_penalty_fen), max(0, -bill.unpaid_late_fee_fen)
    if not (penalty or fee):
        return 0
    bill.unpaid_penalty_fen += penalty
    bill.unpaid_late_fee_fen += fee
    post(
        session,
        ledger.reversal_refunded(from_fen(penalty), from_fen(fee)),
        account_pk=bill.account_pk,
        bill_pk=bill.pk,
        business_date=paid_on,
        posting_id=f"{posting_id}:reversal_refund:{bill.bill_id}",
    )
    return penalty + fee


def _apply_to_bills(
    session: Session,
    bills: list[Bill],
    allocation: Allocation,
    paid_on: date,
    posting_id: str,
    tolerance_fen: int,
    books: RunBooks | None = None,
) -> tuple[int, int]:
    """Apply the allocation's bill lines and grace waivers; returns principal repaid and
    the over-reversed charges refunded to the customer (fen). A settled bill's bureau mark
    is marked settled at once, or with the run's others at its end (``books``)."""
    repaid = refunded = 0
    for bill in bills:
        principal = to_fen(allocation.paid(bill.bill_id, PRINCIPAL))
        bill.unpaid_principal_fen -= principal
        if principal and 0 < bill.unpaid_principal_fen <= tolerance_fen and bill.within_tolerance_on is None:
            bill.within_tolerance_on = paid_on  # rule 2.7: no longer overdue from this date on
        bill.unpaid_penalty_fen -= to_fen(allocation.paid(bill.bill_id, PENALTY_INTEREST))
        bill.unpaid_late_fee_fen -= to_fen(allocation.paid(bill.bill_id, LATE_FEE))
        repaid += principal
        for waiver in (w for w in allocation.waivers if w.bill_id == bill.bill_id):
            bill.unpaid_penalty_fen -= to_fen(waiver.penalty_waived)
            post(
                session,
                ledger.grace_waiver_posted(waiver.penalty_waived),
                account_pk=bill.account_pk,
                bill_pk=bill.pk,
                business_date=paid_on,
                posting_id=f"{posting_id}:grace_waiver:{bill.bill_id}",
            )
        refunded += _refund_overreversal(session, bill, paid_on, posting_id)
        if (
            bill.settled_on is None
            and bill.unpaid_principal_fen == 0
            and bill.unpaid_penalty_fen == 0
            and bill.unpaid_late_fee_fen == 0
        ):
            bill.settled_on = paid_on
            if books is not None:
                books.settled_marks.append({"b_bill_pk": bill.pk, "b_settled_on": paid_on})
            else:
                session.execute(update(BureauMark).where(BureauMark.bill_pk == bill.pk).values(settled_on=paid_on))
    return repaid, refunded


def _open_bills_query(account_pks: list[int]) -> Any:
    """The accounts' bills with something unpaid (not in a plan), in allocation order, locked."""
    return (
        select(Bill)
        .where(
            Bill.account_pk.in_(account_pks),
            Bill.plan_id.is_(None),
            (Bill.unpaid_principal_fen + Bill.unpaid_penalty_fen + Bill.unpaid_late_fee_fen) > 0,
        )
        .order_by(Bill.account_pk, Bill.due_date, Bill.bill_id)
        .with_for_update()
    )


@dataclass
class RunBooks:
    """What a run of repayments reads once instead of once per payment: every account's
    open bills (locked, as ORM objects, so a second payment of an account sees the first),
    and which of them a close dated after the run's earliest payment date has charged (only
    a late notice on those needs its accrual history)."""

    bills: dict[int, list[Bill]]
    charged_since: set[int]
    since: date
    settled_marks: list[dict[str, Any]] = field(default_factory=list)  # bureau marks of bills the run settled

    @classmethod
    def load(cls, session: Session, account_pks: list[int], since: date) -> "RunBooks":
        bills: dict[int, list[Bill]] = {}
        for bill in session.scalars(_open_bills_query(sorted(account_pks))):
            bills.setdefault(bill.account_pk, []).append(bill)
        pks = [bill.pk for run in bills.values() for bill in run]
        charged = (
            set(
                session.scalars(
                    select(DailyAccrual.bill_pk)
                    .distinct()
                    .where(DailyAccrual.bill_pk.in_(pks), DailyAccrual.business_date > since)
                )
            )
            if pks
            else set()
        )
        return cls(bills, charged, since)

    def open_bills(self, account_pk: int) -> list[Bill]:
        return [
            b
            for b in self.bills.get(account_pk, [])
            if b.unpaid_principal_fen + b.unpaid_penalty_fen + b.unpaid_late_fee_fen > 0
        ]

    def closes_after(self, session: Session, bills: list[Bill], paid_on: date) -> dict[int, list[CloseAccrual]]:
        if paid_on >= self.since and not any(b.pk in self.charged_since for b in bills):
            return {}  # no close after paid_on touched these bills: nothing to re-judge
        return _closes_after(session, [b.pk for b in bills], paid_on)

    def write_settled_marks(self, session: Session) -> None:
        """The bureau marks of the bills the run settled, in one executemany. Nothing in the
        run reads them; a mark a late notice withdrew (deleted) meanwhile is simply not found,
        as it would not be after the delete one payment at a time."""
        if self.settled_marks:
            marks = BureauMark.__table__
            session.connection().execute(
                update(marks)
                .where(marks.c.bill_pk == bindparam("b_bill_pk"))
                .values(settled_on=bindparam("b_settled_on")),
                self.settled_marks,
            )
            self.settled_marks = []

    def max_dpd(self, account_pk: int, as_of: date, tolerance_fen: int) -> int:
        """``current_max_dpd`` from the run's bills (the same filter, in memory)."""
        return max(
            (
                as_of.toordinal() - b.due_ordinal
                for b in self.bills.get(account_pk, [])
                if b.unpaid_principal_fen - b.disputed_fen > tolerance_fen and b.due_ordinal < as_of.toordinal()
            ),
            default=0,
        )

    def total_overdue_fen(self, account_pk: int, as_of: date, tolerance_fen: int) -> int:
        """``total_overdue_fen`` from the run's bills (paid-off bills add nothing)."""
        return sum(
            b.unpaid_principal_fen + b.unpaid_penalty_fen + b.unpaid_late_fee_fen
            for b in self.bills.get(account_pk, [])
            if b.due_ordinal < as_of.toordinal() and b.unpaid_principal_fen - b.disputed_fen > tolerance_fen
        )


def apply_money(
    session: Session,
    account: Account,
    amount: Decimal,
    paid_on: date,
    rules: ProductRules,
    posting_id: str,
    source: ledger.Account = ledger.Account.CASH,
    books: RunBooks | None = None,
) -> Allocation:
    """Allocate money to the account's bills, then its plan, then a credit balance; post it.
    (Over-reversed charges refunded by a late notice go to ``account.credit_balance_fen``
    here; the allocation's own leftover is the caller's to add.)"""
    if books is None:
        bills = list(session.scalars(_open_bills_query([account.pk])))
        closes = _closes_after(session, [b.pk for b in bills], paid_on)
    else:
        bills = books.open_bills(account.pk)
        closes = books.closes_after(session, bills, paid_on)
    dues = [dues_as_of(_due_now(b), closes.get(b.pk, []), paid_on) for b in bills]
    plan = session.get(PlanProjection, account.active_plan_id) if account.active_plan_id else None
    allocation = allocate_repayment(
        amount,
        dues,
        from_fen(plan.outstanding_fen) if plan else ZERO,
        paid_on,
        rules.overdue,
        plan_id=plan.plan_id if plan else "plan",
    )
    for bill in bills:
        if closes.get(bill.pk):
            _reverse_later_closes(
                session, bill, closes[bill.pk], paid_on, allocation.paid(bill.bill_id, PRINCIPAL), rules
            )
    repaid, refunded = _apply_to_bills(
        session, bills, allocation, paid_on, posting_id, rules.overdue.arrears_tolerance_fen, books
    )
    account.unpaid_principal_fen -= repaid
    account.credit_balance_fen += refunded
    if plan is not None:
        to_plan = to_fen(allocation.paid(plan.plan_id, "plan"))
        plan.outstanding_fen -= to_plan
        plan.paid_fen += to_plan
    charged_off = {b.bill_id for b in bills if b.charged_off_on is not None}
    post(
        session,
        ledger.repayment_allocated(allocation, charged_off_bill_ids=charged_off, source=source),
        account_pk=account.pk,
        bill_pk=None,
        business_date=paid_on,
        posting_id=posting_id,
    )
    return allocation


def total_overdue_fen(session: Session, account_pk: int, as_of: date, tolerance_fen: int) -> int:
    """What the account owes on its overdue bills: those past due outside a plan whose unpaid
    principal is beyond the arrears tolerance (fen)."""
    rows = session.execute(
        select(Bill.unpaid_principal_fen + Bill.unpaid_penalty_fen + Bill.unpaid_late_fee_fen).where(
            Bill.account_pk == account_pk,
            Bill.plan_id.is_(None),
            Bill.due_ordinal < as_of.toordinal(),
            Bill.unpaid_principal_fen - Bill.disputed_fen > tolerance_fen,
        )
    ).scalars()
    return int(sum(rows))


def relock(
    session: Session,
    account_pk: int,
    as_of: date,
    rules: ProductRules,
    occurred_at: datetime,
    causation_id: str | None = None,
    correlation_id: str | None = None,
    plan_active: bool | None = None,
    max_dpd: int | None = None,
    account: Account | None = None,
) -> list[PendingEvent]:
    """Re-run the lock ladder for one account now (a cure lifts measures at once).
    ``max_dpd``: the account's current maximum DPD when the caller already knows it;
    ``account``: its ORM object, when the caller holds it locked and current (its ladder
    columns are then read from it, not from the database, and expired once written)."""
    if account is None:
        row = account_row(session.execute(select(*ACCOUNT_COLUMNS).where(Account.pk == account_pk)).one())
    else:
        row = ladder_row(account)
    writer = RestrictionWriter(session, as_of, rules.lock_ladder, occurred_at, causation_id, correlation_id)
    if max_dpd is None:
        max_dpd = current_max_dpd(session, account_pk, as_of, rules.overdue.arrears_tolerance_fen)
    max_dpd = _paused_max_dpd(session, account_pk, max_dpd, account)
    writer.decide(row, max_dpd, plan_active=plan_active)
    writer.flush()
    if writer.restricted_identities:
        relink_identities(session, writer.restricted_identities, as_of, rules.lock_ladder, writer)
        writer.flush()
    if account is not None:
        _forget_ladder(session, account, relinked=bool(writer.restricted_identities))
    return writer.events


def _paused_max_dpd(session: Session, account_pk: int, max_dpd: int, account: Account | None) -> int:
    """A paused account climbs no step of the ladder (RULES 2.8): its DPD stands where the
    last close before the pause left it; a payment can still lower it (and cure)."""
    if account is not None:
        paused, stood = account.paused_on is not None, account.max_dpd
    else:
        row = session.execute(select(Account.paused_on, Account.max_dpd).where(Account.pk == account_pk)).one()
        paused, stood = row.paused_on is not None, row.max_dpd
    return min(max_dpd, stood) if paused else max_dpd


# What the lock ladder writes on accounts with Core statements (RestrictionWriter,
# relink_identities), behind the ORM's back.
_LADDER_ATTRIBUTES = ["level", "status", "limit_cut", "credit_limit_fen", "max_dpd", "last_overdue_on", "linked_level"]


def ladder_row(account: Account) -> AccountRow:
    """The ladder's view of an account from its ORM object (kept current by ``_forget_ladder``)."""
    return AccountRow(
        pk=account.pk,
        account_id=account.account_id,
        identity_hash=account.identity_hash,
        level=account.level,
        status=account.status,
        limit_cut=account.limit_cut,
        active_plan_id=account.active_plan_id,
        linked_level=account.linked_level,
        last_overdue_on=account.last_overdue_on,
        granted_limit_fen=account.granted_limit_fen,
        credit_limit_fen=account.credit_limit_fen,
        unpaid_principal_fen=account.unpaid_principal_fen,
    )


def _forget_ladder(session: Session, account: Account, relinked: bool) -> None:
    """After a relock wrote the ladder columns with Core statements, the ORM objects hold
    the old values: expire them, so the next payment of the run reads them again (a
    change may also have relinked other accounts of the identity: those are expired too)."""
    targets = [obj for obj in session.identity_map.values() if isinstance(obj, Account)] if relinked else [account]
    for obj in targets:
        session.expire(obj, _LADDER_ATTRIBUTES)


def ladder_date(session: Session, paid_on: date) -> date:
    """The business date measures are judged on after a payment: the last close, or later."""
    return judged_on(paid_on, last_done(session, "daily-close"))


def judged_on(paid_on: date, last_close: date | None) -> date:
    return max(paid_on, last_close or paid_on)


def _applied_payload(
    payment_id: str, account: Account, amount: Decimal, allocation: Allocation, total_overdue: int, paid_on: date
) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "account_id": account.account_id,
        "amount": str(amount.quantize(FEN)),
        "allocations": [
            {
                "target": line.target,
                "target_id": line.target_id,
                "component": line.component,
                "amount": str(line.amount),
            }
            for line in allocation.lines
        ],
        "credit_balance": fen_str(account.credit_balance_fen),
        "total_overdue": fen_str(total_overdue),
        "paid_on": paid_on.isoformat(),
    }


def repayment_received_batch(items: list[tuple[HandlerContext, p.RepaymentReceived]]) -> None:
    """A run of repayments, applied one by one in message order by the same rules; what every
    payment would look up again (applied before? its account, the last close) is read once
    for the run, and the run's replies go to the outbox in one insert."""
    session = items[0][0].session
    payment_ids = sorted({event.payment_id for _, event in items})
    answered = ANSWER_BOOK.load(session, payment_ids)
    seen = set(session.scalars(select(Repayment.payment_id).where(Repayment.payment_id.in_(payment_ids))))
    accounts = {
        account.account_id: account
        for account in session.scalars(
            select(Account)
            .where(Account.account_id.in_(sorted({event.account_id for _, event in items})))
            .order_by(Account.pk)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    last_close = last_done(session, "daily-close")
    books = RunBooks.load(
        session, [a.pk for a in accounts.values()], min(business_date(event.paid_at) for _, event in items)
    )
    replies: list[PendingEvent] = []
    first_answers: dict[str, Answer] = {}
    with postings_held(session):  # nothing in the run reads the ledger: one insert at its end
        for ctx, event in items:
            if event.payment_id in answered:
                replies.append(repeat(ctx, answered[event.payment_id]))  # a retry: the first answer again
                continue
            if event.payment_id in seen:
                continue  # applied before its answer was kept (older rows): applied once, not answered again
            seen.add(event.payment_id)
            events = _receive(ctx, event, accounts.get(event.account_id), last_close, books)
            answered[event.payment_id] = first_answers[event.payment_id] = Answer.of(events[0])
            replies.extend(events)
    books.write_settled_marks(session)
    ANSWER_BOOK.keep(session, first_answers)
    items[0][0].outbox.emit_many(session, replies)


def _receive(
    ctx: HandlerContext, event: p.RepaymentReceived, account: Account | None, last_close: date | None, books: RunBooks
) -> list[PendingEvent]:
    """Apply one repayment of the run, or reject it with a reason (nothing changes), on the
    run's ``books``; returns the replies, its answer first."""
    session = ctx.session
    paid_on = business_date(event.paid_at)
    record = Repayment(
        payment_id=event.payment_id,
        account_id=event.account_id,
        amount=str(event.amount)[:40],
        currency=event.currency[:8],
        paid_at=event.paid_at,
        paid_on=paid_on,
        channel=event.channel[:32],
    )
    reason = rejection_reason(account, event)
    if reason is not None:
        record.status, record.reason = "rejected", reason
        session.add(record)
        return [
            ctx.reply(
                "repayment.rejected",
                p.RepaymentRejected(
                    payment_id=event.payment_id,
                    account_id=event.account_id,
                    amount=event.amount,
                    reason=reason,
                ),
                event.account_id,
            )
        ]
    assert account is not None
    amount = event.amount.quantize(FEN)
    allocation = apply_money(session, account, amount, paid_on, ctx.rules, f"repayment:{event.payment_id}", books=books)
    account.credit_balance_fen += to_fen(allocation.credit_balance)
    as_of = judged_on(paid_on, last_close)
    events = relock(
        session,
        account.pk,
        as_of,
        ctx.rules,
        ctx.clock.now(),
        ctx.envelope.event_id,
        ctx.envelope.correlation_id,
        max_dpd=books.max_dpd(account.pk, as_of, ctx.rules.overdue.arrears_tolerance_fen),
        account=account,
    )
    overdue = books.total_overdue_fen(account.pk, as_of, ctx.rules.overdue.arrears_tolerance_fen)
    payload = _applied_payload(event.payment_id, account, amount, allocation, overdue, paid_on)
    record.status, record.allocations = "applied", json.dumps(payload["allocations"])
    session.add(record)
    return [ctx.reply("repayment.applied", payload, event.account_id), *events]


def apply_credit_balance(
    session: Session, outbox: Outbox, account: Account, on: date, rules: ProductRules, now: datetime
) -> None:
    """A credit balance pays the bill issued today, like a repayment from the balance."""
    amount = from_fen(account.credit_balance_fen)
    payment_id = f"credit-balance-{account.account_id}-{on.isoformat()}"
    allocation = apply_money(session, account, amount, on, rules, payment_id, source=ledger.Account.CREDIT_BALANCE)
    account.credit_balance_fen += to_fen(allocation.credit_balance) - to_fen(amount)
    session.flush()
    payload = _applied_payload(
        payment_id,
        account,
        amount,
        allocation,
        total_overdue_fen(session, account.pk, on, rules.overdue.arrears_tolerance_fen),
        on,
    )
    outbox.emit_many(session, [PendingEvent("repayment.applied", account.account_id, payload, now)])
