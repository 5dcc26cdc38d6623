"""Applying lock-ladder decisions to accounts: limits, history, events, linked accounts.

The close (for many accounts at once) and the repayment and plan handlers (for
one) all go through here, so a restriction changes the same way whoever
changes it. The rules themselves are in ``domain/lock_ladder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from services.accounts.domain.billing import available_limit
from services.accounts.domain.lock_ladder import (
    CAUSE_LINKED_ACCOUNT,
    LadderDecision,
    LadderState,
    available_frozen,
    effective_credit_limit,
    lock_ladder,
)
from services.accounts.models import Account, Bill, RestrictionHistory
from shared.bus.outbox import PendingEvent
from shared.money import fen_str, from_fen, to_fen
from shared.rules import LockLadderRules


@dataclass(frozen=True)
class AccountRow:
    """The columns of an account the ladder needs (a Core row, not an ORM object)."""

    pk: int
    account_id: str
    identity_hash: str
    level: int
    status: str
    limit_cut: bool
    active_plan_id: str | None
    linked_level: int
    last_overdue_on: date | None
    granted_limit_fen: int
    credit_limit_fen: int
    unpaid_principal_fen: int

    @property
    def state(self) -> LadderState:
        return LadderState(
            level=self.level,
            closed=self.status == "closed",
            limit_cut=self.limit_cut,
            plan_active=self.active_plan_id is not None,
            linked_level=self.linked_level,
            last_overdue_date=self.last_overdue_on,
        )


ACCOUNT_COLUMNS = (
    Account.pk,
    Account.account_id,
    Account.identity_hash,
    Account.level,
    Account.status,
    Account.limit_cut,
    Account.active_plan_id,
    Account.linked_level,
    Account.last_overdue_on,
    Account.granted_limit_fen,
    Account.credit_limit_fen,
    Account.unpaid_principal_fen,
)


def account_row(row: Any) -> AccountRow:
    return AccountRow(*row[: len(ACCOUNT_COLUMNS)])


def credit_limit_after(row: AccountRow, state: LadderState, rules: LockLadderRules) -> int:
    """The effective limit once the ladder has spoken: cut to 50% of the granted limit, or restored."""
    if state.limit_cut == row.limit_cut:
        return row.credit_limit_fen
    return to_fen(effective_credit_limit(from_fen(row.granted_limit_fen), state.limit_cut, rules))


def restrictions_payload(
    account_id: str,
    business_date: date,
    state: LadderState,
    credit_limit_fen: int,
    unpaid_principal_fen: int,
    cause: str,
) -> dict[str, Any]:
    """``account.restrictions.changed`` in wire form."""
    measures = list(state.measures)
    available = available_limit(from_fen(credit_limit_fen), from_fen(unpaid_principal_fen), available_frozen(measures))
    return {
        "account_id": account_id,
        "business_date": business_date.isoformat(),
        "level": state.event_level,
        "measures": measures,
        "credit_limit": fen_str(credit_limit_fen),
        "available_limit": str(available),
        "cause": cause,
    }


class RestrictionWriter:
    """Collects ladder decisions for many accounts and writes them set-based."""

    def __init__(
        self,
        session: Session,
        business_date: date,
        rules: LockLadderRules,
        occurred_at: Any,
        causation_id: str | None = None,
        correlation_id: str | None = None,
    ):
        self.session = session
        self.business_date = business_date
        self.rules = rules
        self.occurred_at = occurred_at
        self.causation_id = causation_id
        self.correlation_id = correlation_id
        self.account_updates: list[dict[str, Any]] = []
        self.history_added: list[dict[str, Any]] = []
        self.history_lifted: list[dict[str, Any]] = []
        self.events: list[PendingEvent] = []
        self.restricted_identities: set[str] = set()

    def decide(self, row: AccountRow, max_dpd: int, plan_active: bool | None = None) -> LadderDecision:
        """Run the lock ladder for one account and queue what it changes."""
        decision = lock_ladder(
            row.state,
            max_dpd=max_dpd,
            business_date=self.business_date,
            rules=self.rules,
            plan_active=row.active_plan_id is not None if plan_active is None else plan_active,
            linked_level=row.linked_level,
        )
        self.record(row, decision, max_dpd)
        return decision

    def record(self, row: AccountRow, decision: LadderDecision, max_dpd: int) -> None:
        state = decision.state
        limit_fen = credit_limit_after(row, state, self.rules)
        self.account_updates.append(
            {
                "b_pk": row.pk,
                "b_level": state.level,
                "b_status": "closed" if state.closed else row.status,
                "b_limit_cut": state.limit_cut,
                "b_credit_limit_fen": limit_fen,
                "b_max_dpd": max_dpd,
                "b_last_overdue_on": state.last_overdue_date,
            }
        )
        for measure in decision.measures_added:
            self.history_added.append(
                {
                    "account_pk": row.pk,
                    "measure": measure,
                    "cause": decision.cause or "",
                    "added_on": self.business_date,
                    "lifted_on": None,
                }
            )
        for measure in decision.measures_lifted:
            self.history_lifted.append({"b_pk": row.pk, "b_measure": measure})
        if state.level != row.level and (state.level >= 3 or row.level >= 3):
            self.restricted_identities.add(row.identity_hash)
        if decision.changed:
            self._event(
                "account.restrictions.changed",
                row.account_id,
                restrictions_payload(
                    row.account_id,
                    self.business_date,
                    state,
                    limit_fen,
                    row.unpaid_principal_fen,
                    decision.cause or "own_overdue",
                ),
            )
        if decision.cured:
            self._event(
                "account.cured",
                row.account_id,
                {"account_id": row.account_id, "business_date": self.business_date.isoformat()},
            )

    def _event(self, event_type: str, aggregate_id: str, payload: dict[str, Any]) -> None:
        self.events.append(
            PendingEvent(
                event_type,
                aggregate_id,
                payload,
                self.occurred_at,
                correlation_id=self.correlation_id,
                causation_id=self.causation_id,
            )
        )

    def flush(self) -> None:
        """Write every queued change: one executemany per kind.

        Straight on the session's connection: ``Session.execute`` would first flush every
        pending ORM change of the transaction, and a run of repayments relocks after each
        payment, so each payment's bills would go out as statements of their own instead of
        in one executemany at the run's end. Nothing here reads, and the ORM never writes
        the columns written here (the callers expire them on their objects), so the order
        in which the two reach the database does not matter."""
        connection = self.session.connection()
        if self.account_updates:
            connection.execute(
                update(Account.__table__)
                .where(Account.__table__.c.pk == bindparam("b_pk"))
                .values(
                    level=bindparam("b_level"),
                    status=bindparam("b_status"),
                    limit_cut=bindparam("b_limit_cut"),
                    credit_limit_fen=bindparam("b_credit_limit_fen"),
                    max_dpd=bindparam("b_max_dpd"),
                    last_overdue_on=bindparam("b_last_overdue_on"),
                ),
                self.account_updates,
            )
        if self.history_added:
            connection.execute(insert(RestrictionHistory.__table__), self.history_added)
        if self.history_lifted:
            history = RestrictionHistory.__table__
            connection.execute(
                update(history)
                .where(
                    and_(
                        history.c.account_pk == bindparam("b_pk"),
                        history.c.measure == bindparam("b_measure"),
                        history.c.lifted_on.is_(None),
                    )
                )
                .values(lifted_on=self.business_date),
                self.history_lifted,
            )
        self.account_updates, self.history_added, self.history_lifted = [], [], []


def current_max_dpd(session: Session, account_pk: int, as_of: date, tolerance_fen: int) -> int:
    """The account's maximum DPD as of a date, over the bills that count (not in a plan,
    unpaid principal beyond the arrears tolerance, in fen)."""
    value = session.scalar(
        select(func.max(as_of.toordinal() - Bill.due_ordinal)).where(
            Bill.account_pk == account_pk,
            Bill.unpaid_principal_fen - Bill.disputed_fen > tolerance_fen,  # disputed: set aside
            Bill.plan_id.is_(None),
            Bill.due_ordinal < as_of.toordinal(),
        )
    )
    return int(value or 0)


RELINK_CHUNK = 5_000
"""Identities whose accounts are read and relinked together: bounds the close's memory."""


def relink_identities(
    session: Session,
    identities: set[str] | None,
    business_date: date,
    rules: LockLadderRules,
    writer: RestrictionWriter,
) -> int:
    """Recompute what each account's linked accounts impose on it (same identity).

    ``identities`` None means every identity whose links can change: several accounts
    and one of them frozen, or a linked restriction still held. Their accounts are read
    ``RELINK_CHUNK`` identities at a time, so the close's memory stays flat however many
    accounts are frozen. Returns how many accounts changed.
    """
    scope = sorted(identities) if identities is not None else _identities_to_relink(session)
    changed = 0
    for start in range(0, len(scope), RELINK_CHUNK):
        changed += _relink_chunk(session, scope[start : start + RELINK_CHUNK], writer)
        writer.flush()
    return changed


def _identities_to_relink(session: Session) -> list[str]:
    """Identities with a linked restriction held, or with several accounts one of them frozen."""
    table = Account.__table__
    query = (
        select(table.c.identity_hash)
        .group_by(table.c.identity_hash)
        .having((func.max(table.c.linked_level) > 0) | ((func.max(table.c.level) >= 3) & (func.count() > 1)))
        .order_by(table.c.identity_hash)
    )
    return list(session.scalars(query))


def _relink_chunk(session: Session, identities: list[str], writer: RestrictionWriter) -> int:
    """Relink the accounts of some identities: each takes the highest level of the others."""
    table = Account.__table__
    query = select(*ACCOUNT_COLUMNS, Account.max_dpd).where(Account.identity_hash.in_(identities))
    groups: dict[str, list[tuple[AccountRow, int]]] = {}
    for raw in session.execute(query.order_by(Account.identity_hash, Account.pk)):
        row = account_row(raw)
        groups.setdefault(row.identity_hash, []).append((row, raw[-1]))
    changed: list[dict[str, Any]] = []
    for members in groups.values():
        if len(members) < 2 and all(row.linked_level == 0 for row, _ in members):
            continue
        for row, max_dpd in members:
            others = max((other.level for other, _ in members if other.pk != row.pk), default=0)
            if others != row.linked_level:
                writer.record(row, _linked_decision(row, others), max_dpd)
                changed.append({"b_pk": row.pk, "b_linked": others})
    if changed:
        session.execute(
            update(table).where(table.c.pk == bindparam("b_pk")).values(linked_level=bindparam("b_linked")), changed
        )
    return len(changed)


def _linked_decision(row: AccountRow, others: int) -> LadderDecision:
    before = row.state
    after = LadderState(**{**before.__dict__, "linked_level": others})
    return LadderDecision(
        state=after,
        measures=after.measures,
        measures_added=tuple(m for m in after.measures if m not in before.measures),
        measures_lifted=tuple(m for m in before.measures if m not in after.measures),
        changed=after.measures != before.measures,
        cause=CAUSE_LINKED_ACCOUNT,
        cured=False,
        limit_restored=False,
    )
