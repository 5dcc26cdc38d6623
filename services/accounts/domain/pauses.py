"""The delinquency pause (RULES 2.8): an operator stops the account's delinquency clock.

While an account is paused the daily close leaves its bills alone (no penalty, no late
fee, no DPD, no step up the lock ladder, no bureau mark, no charge-off) and measures
already in force stay. On resume DPD counts on from where it stood: the closes skipped
while paused do not count. The close of date T judges a bill against ``due_ordinal``
(DPD = T − due_ordinal), so a resume moves each overdue bill's ``due_ordinal`` on by the
paused days that fell after its due date; its ``due_date``, the date the customer was
given, stays.

Pure rules: plain values in, decisions out.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

PauseReason = Literal["dispute", "disaster_relief", "bereavement", "fraud_investigation", "regulator"]
PAUSE_REASONS: tuple[str, ...] = get_args(PauseReason)

# The measure the delinquency history records for a pause (its cause: the pause's reason).
PAUSED_MEASURE = "delinquency_paused"

UNKNOWN_ACCOUNT = "unknown_account"
ALREADY_PAUSED = "already_paused"
NOT_PAUSED = "not_paused"
UNTIL_NOT_AFTER_TODAY = "until_not_after_today"


def paused_for_close(paused_on: date | None, close_date: date) -> bool:
    """The close of ``close_date`` leaves the account alone: it was paused on an earlier date
    (the close of the pause's own date ran at its start, before the operator's command)."""
    return paused_on is not None and paused_on < close_date


def pause_rejection(known: bool, paused_on: date | None, until: date | None, today: date) -> str | None:
    """Why a pause cannot be applied, first match wins; None when it can."""
    if not known:
        return UNKNOWN_ACCOUNT
    if paused_on is not None:
        return ALREADY_PAUSED
    if until is not None and until <= today:
        return UNTIL_NOT_AFTER_TODAY
    return None


def resume_rejection(known: bool, paused_on: date | None) -> str | None:
    """Why a resume cannot be applied; None when it can."""
    if not known:
        return UNKNOWN_ACCOUNT
    if paused_on is None:
        return NOT_PAUSED
    return None


def resumed_on(requested_on: date, last_close: date | None) -> date:
    """The last date of the pause: the resume's own date, or the last close if a later close
    already ran (and skipped the account) before the resume arrived."""
    return max(requested_on, last_close or requested_on)


def days_not_counted(paused_on: date, resumed: date, counted_due: date) -> int:
    """The closes of ``paused_on`` + 1 … ``resumed`` skipped while paused that fell after the
    bill's (counted) due date: the days its DPD does not count."""
    return max(0, (resumed - max(paused_on, counted_due)).days)
