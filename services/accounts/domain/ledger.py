"""A tiny double-entry ledger: account codes and one posting builder per business event
(RULES section 4: "for every posting, debits equal credits").

Accounts and their normal side:

* customer receivables (debit): ``customer_principal``, ``customer_penalty``,
  ``customer_late_fee``, ``plan_receivable``;
* owed to the customer (credit): ``credit_balance``;
* ``cash`` (debit), ``merchant_payable`` (credit: what checkout's merchants are owed);
* income (credit): ``penalty_income``, ``fee_income`` (late fees), ``plan_fee_income``;
* expense (debit): ``waiver_expense``, ``write_off_expense``; and its contra
  ``write_off_recovery`` (credit): money collected on a charged-off bill.

The identity of RULES section 4, per customer:
``customer_balance = billed - paid - waived - (written off - recovered)`` where billed is
purchases + penalty + late fees + plan fees - backdated reversals. A charged-off bill's
receivables are zero but the debt stays collectable: money reaching it is booked as a
recovery (cash against ``write_off_recovery``), which lowers the net write-off.

Reversals (a late-arriving repayment) debit the income they corrected: the charge
should never have been made. Waivers (the grace rule) debit ``waiver_expense``: the
charge was due and the product gives it up.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.money import FEN, ZERO

from .allocation import LATE_FEE, PENALTY_INTEREST, PLAN, PRINCIPAL, Allocation, BackdatedReversal


class Account(StrEnum):
    CUSTOMER_PRINCIPAL = "customer_principal"
    CUSTOMER_PENALTY = "customer_penalty"
    CUSTOMER_LATE_FEE = "customer_late_fee"
    PLAN_RECEIVABLE = "plan_receivable"
    CREDIT_BALANCE = "credit_balance"
    CASH = "cash"
    MERCHANT_PAYABLE = "merchant_payable"
    PENALTY_INCOME = "penalty_income"
    FEE_INCOME = "fee_income"
    PLAN_FEE_INCOME = "plan_fee_income"
    WAIVER_EXPENSE = "waiver_expense"
    WRITE_OFF_EXPENSE = "write_off_expense"
    WRITE_OFF_RECOVERY = "write_off_recovery"


CUSTOMER_RECEIVABLES: frozenset[Account] = frozenset(
    {Account.CUSTOMER_PRINCIPAL, Account.CUSTOMER_PENALTY, Account.CUSTOMER_LATE_FEE, Account.PLAN_RECEIVABLE}
)

_RECEIVABLE_OF_COMPONENT: dict[str, Account] = {
    PENALTY_INTEREST: Account.CUSTOMER_PENALTY,
    LATE_FEE: Account.CUSTOMER_LATE_FEE,
    PRINCIPAL: Account.CUSTOMER_PRINCIPAL,
    PLAN: Account.PLAN_RECEIVABLE,
}


class UnbalancedPosting(ValueError):
    """A posting whose debits do not equal its credits, or with a bad amount."""


@dataclass(frozen=True)
class PostingLine:
    """One side of one account: exactly one of debit and credit is > 0."""

    account: Account
    debit: Decimal = ZERO
    credit: Decimal = ZERO


def _check_line(line: PostingLine) -> None:
    for amount in (line.debit, line.credit):
        if amount < 0 or amount != amount.quantize(FEN):
            raise UnbalancedPosting(f"{line.account}: {amount} is not a fen amount >= 0")
    if (line.debit > 0) == (line.credit > 0):
        raise UnbalancedPosting(f"{line.account}: a line is either a debit or a credit")


@dataclass(frozen=True)
class Posting:
    """One balanced journal entry. An event with nothing to move has no lines."""

    lines: tuple[PostingLine, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        for line in self.lines:
            _check_line(line)
        if self.total_debit != self.total_credit:
            raise UnbalancedPosting(f"{self.memo}: debits {self.total_debit} != credits {self.total_credit}")

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


def debit(account: Account, amount: Decimal) -> PostingLine:
    return PostingLine(account, debit=amount)


def credit(account: Account, amount: Decimal) -> PostingLine:
    return PostingLine(account, credit=amount)


def _posting(memo: str, *lines: PostingLine) -> Posting:
    """A posting without its zero lines (a zero charge moves nothing)."""
    return Posting(tuple(line for line in lines if line.debit > 0 or line.credit > 0), memo)


def _transfer(memo: str, to_debit: Account, to_credit: Account, amount: Decimal) -> Posting:
    return _posting(memo, debit(to_debit, amount), credit(to_credit, amount))


def purchase_posted(amount: Decimal) -> Posting:
    """An approved purchase: the customer owes principal, the merchant is owed."""
    return _transfer("purchase", Account.CUSTOMER_PRINCIPAL, Account.MERCHANT_PAYABLE, amount)


def penalty_accrued(amount: Decimal) -> Posting:
    """One close's penalty interest on one bill."""
    return _transfer("penalty_accrued", Account.CUSTOMER_PENALTY, Account.PENALTY_INCOME, amount)


def late_fee_charged(amount: Decimal) -> Posting:
    """The one-time late fee at the end of grace."""
    return _transfer("late_fee", Account.CUSTOMER_LATE_FEE, Account.FEE_INCOME, amount)


def repayment_allocated(
    allocation: Allocation,
    *,
    charged_off_bill_ids: Collection[str] = (),
    source: Account = Account.CASH,
) -> Posting:
    """A repayment as allocated: the source (cash, or the credit balance paying a new
    bill) against each line; money on a charged-off bill is a recovery."""
    lines = [debit(source, allocation.amount)]
    for line in allocation.lines:
        account = (
            Account.WRITE_OFF_RECOVERY
            if line.target == "bill" and line.target_id in charged_off_bill_ids
            else _RECEIVABLE_OF_COMPONENT[line.component]
        )
        lines.append(credit(account, line.amount))
    lines.append(credit(Account.CREDIT_BALANCE, allocation.credit_balance))
    return _net(_posting("repayment", *lines))


def _net(posting: Posting) -> Posting:
    """Net debits and credits per account (credit balance paying a bill and keeping a
    rest would otherwise show the account on both sides)."""
    net: dict[Account, Decimal] = {}
    for line in posting.lines:
        net[line.account] = net.get(line.account, ZERO) + line.debit - line.credit
    lines = [debit(a, v) if v > 0 else credit(a, -v) for a, v in net.items() if v != 0]
    return Posting(tuple(lines), posting.memo)


def grace_waiver_posted(penalty_waived: Decimal) -> Posting:
    """The grace rule's reversing entry: the penalty accrued in grace is given up."""
    return _transfer("grace_waiver", Account.WAIVER_EXPENSE, Account.CUSTOMER_PENALTY, penalty_waived)


def hardship_waiver_posted(component: str, amount: Decimal) -> Posting:
    """An operator's hardship waiver (RULES 4.5): the penalty interest or late fee given up."""
    receivable = Account.CUSTOMER_PENALTY if component == "penalty_interest" else Account.CUSTOMER_LATE_FEE
    return _transfer("hardship_waiver", Account.WAIVER_EXPENSE, receivable, amount)


def dispute_upheld_posted(principal: Decimal, to_credit_balance: Decimal) -> Posting:
    """A dispute upheld (RULES 4.6): the merchant's side takes the amount back; it leaves the
    principal owed, and what the customer had already paid of it becomes credit balance."""
    return _posting(
        "dispute_upheld",
        debit(Account.MERCHANT_PAYABLE, principal + to_credit_balance),
        credit(Account.CUSTOMER_PRINCIPAL, principal),
        credit(Account.CREDIT_BALANCE, to_credit_balance),
    )


def dispute_charges_reversed(penalty: Decimal, late_fee: Decimal) -> Posting:
    """The charges that accrued on an upheld disputed amount: taken back from income."""
    return _posting(
        "dispute_reversal",
        debit(Account.PENALTY_INCOME, penalty),
        credit(Account.CUSTOMER_PENALTY, penalty),
        debit(Account.FEE_INCOME, late_fee),
        credit(Account.CUSTOMER_LATE_FEE, late_fee),
    )


def backdated_reversal_posted(reversal: BackdatedReversal) -> Posting:
    """A late-arriving repayment's correction: charges that should never have been made."""
    return _posting(
        "backdated_reversal",
        debit(Account.PENALTY_INCOME, reversal.penalty_reversed),
        credit(Account.CUSTOMER_PENALTY, reversal.penalty_reversed),
        debit(Account.FEE_INCOME, reversal.late_fee_reversed),
        credit(Account.CUSTOMER_LATE_FEE, reversal.late_fee_reversed),
    )


def reversal_refunded(penalty: Decimal, late_fee: Decimal) -> Posting:
    """A reversed charge the customer had already paid goes back to them as credit balance.

    A late notice can reverse charges that a later payment, applied first, already
    paid: the receivable would turn negative. What was paid for a charge that should
    never have been made is owed to the customer, like any overpayment.
    """
    return _posting(
        "reversal_refund",
        debit(Account.CUSTOMER_PENALTY, penalty),
        debit(Account.CUSTOMER_LATE_FEE, late_fee),
        credit(Account.CREDIT_BALANCE, penalty + late_fee),
    )


def charged_off(principal: Decimal, penalty: Decimal, late_fee: Decimal) -> Posting:
    """Charge-off at DPD 180: the bill's receivables are written off (still collectable)."""
    return _posting(
        "charge_off",
        debit(Account.WRITE_OFF_EXPENSE, principal + penalty + late_fee),
        credit(Account.CUSTOMER_PRINCIPAL, principal),
        credit(Account.CUSTOMER_PENALTY, penalty),
        credit(Account.CUSTOMER_LATE_FEE, late_fee),
    )


def moved_into_plan(principal: Decimal, penalty: Decimal, late_fee: Decimal) -> Posting:
    """Plan activation: the bills' unpaid principal, penalty and late fee become the
    plan's restructured principal."""
    return _posting(
        "moved_into_plan",
        debit(Account.PLAN_RECEIVABLE, principal + penalty + late_fee),
        credit(Account.CUSTOMER_PRINCIPAL, principal),
        credit(Account.CUSTOMER_PENALTY, penalty),
        credit(Account.CUSTOMER_LATE_FEE, late_fee),
    )


def plan_fee_due(amount: Decimal) -> Posting:
    """An installment's fee falls due (future fees are never posted, so cancelling or
    waiving them on default or early settlement moves nothing)."""
    return _transfer("plan_fee", Account.PLAN_RECEIVABLE, Account.PLAN_FEE_INCOME, amount)


def plan_default_to_bill(amount: Decimal) -> Posting:
    """Plan default: the remaining plan principal and the fees already due become the
    principal of one overdue bill."""
    return _transfer("plan_default", Account.CUSTOMER_PRINCIPAL, Account.PLAN_RECEIVABLE, amount)


def balances(postings: Iterable[Posting]) -> dict[Account, Decimal]:
    """Each account's balance, debit positive."""
    result: dict[Account, Decimal] = {}
    for posting in postings:
        for line in posting.lines:
            result[line.account] = result.get(line.account, ZERO) + line.debit - line.credit
    return result


def customer_balance(postings: Iterable[Posting]) -> Decimal:
    """What the customer owes net: receivables less the credit balance owed to them."""
    by_account = balances(postings)
    owed = sum((by_account.get(a, ZERO) for a in CUSTOMER_RECEIVABLES), ZERO)
    return owed + by_account.get(Account.CREDIT_BALANCE, ZERO)


def plan_fees_cancelled(amount: Decimal) -> Posting:
    """Plan fees posted at activation that will never fall due (early settlement waives
    them, a default cancels them): the fee income is taken back."""
    return _transfer("plan_fees_cancelled", Account.PLAN_FEE_INCOME, Account.PLAN_RECEIVABLE, amount)


def plan_activation_waiver(amount: Decimal) -> Posting:
    """Charges that accrued between a plan's offer and its acceptance: waived, since the
    customer accepted the disclosed principal."""
    return _transfer("plan_activation_waiver", Account.WAIVER_EXPENSE, Account.PLAN_RECEIVABLE, amount)
