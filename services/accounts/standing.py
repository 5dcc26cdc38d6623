"""An account row seen through the lock ladder: its state, measures and available limit.

The glue between the ``accounts`` table and the pure ladder rules, used by the
handlers, the close and the command line alike.
"""

from __future__ import annotations

from decimal import Decimal

from services.accounts.domain.billing import AccountStatus, available_limit
from services.accounts.domain.lock_ladder import LadderState, account_status_for, available_frozen
from services.accounts.models import Account
from shared.money import from_fen


def ladder_state(account: Account) -> LadderState:
    return LadderState(
        level=account.level,
        closed=account.status == "closed",
        limit_cut=account.limit_cut,
        plan_active=account.active_plan_id is not None,
        linked_level=account.linked_level,
        last_overdue_date=account.last_overdue_on,
    )


def measures(account: Account) -> tuple[str, ...]:
    return ladder_state(account).measures


def borrowing_status(account: Account) -> AccountStatus:
    return account_status_for(measures(account))


def available(account: Account) -> Decimal:
    """available = effective limit − unpaid principal, never < 0; 0 while frozen."""
    return available_limit(
        from_fen(account.credit_limit_fen), from_fen(account.unpaid_principal_fen), available_frozen(measures(account))
    )
