"""The compliance guard: enforced before every contact, whatever the strategy says.

RULES section 6, compliance. The strategy decides *what* to say and *when* in DPD
terms; this guard decides whether a given contact may happen *now*. The service calls
:func:`check_contact` when it plans a contact and again just before sending a queued
one (a payment or a promise may have arrived in between), and records every decision,
allowed or suppressed, with its reason.

Decisions (checked in this order, the first that applies wins):

1. ``not_own_phone``: only the customer's own phone, never a third party; a number a
   collector reported as wrong is not the customer's any more.
1b. ``paused``: the account's delinquency is paused (RULES 2.8): no contact at all, the
   plan's reminders included.
2. ``plan_active``: while a restructuring plan is active only the plan's own
   installment reminders go out. (A plan reminder is exempt from ``cured``: the
   plan's bills no longer count for DPD, so the account may look cured.)
3. ``cured``: the account is cured or the bill the contact is about is paid; also a
   plan reminder once no plan is active any more (the plan it reminded of is over).
4. ``promise_pending``: a promise to pay pauses contact through its last paused date.
5. ``quiet_hours``: only 08:00–21:00 Asia/Shanghai, start inclusive, end exclusive.
   This one *defers*: the decision carries ``next_window_start`` and the contact is
   kept for then, not dropped. It comes before the caps because the caps are counted
   on the day the contact will actually happen.
6. ``daily_cap``: at most 1 SMS per account per business day (SMS already handed to
   the gateway count, delivered or not: a failed delivery report must not turn into
   a second message), at most 3 call attempts per business day.
7. ``weekly_cap``: at most 7 call attempts in the rolling 7 business days ending today
   (today and the 6 dates before it, Asia/Shanghai). Counting whole days rather than
   168 hours is the stricter reading and gives the same answer all day long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.rules import ContactCompliance

from .stages import ActionKind, CaseView

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Channel(StrEnum):
    """How a contact reaches the customer."""

    SMS = "sms"
    CALL = "call"


class SuppressionReason(StrEnum):
    """Why a contact did not happen; the ``reason`` of ``contact.suppressed``."""

    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"
    WEEKLY_CAP = "weekly_cap"
    CURED = "cured"
    PLAN_ACTIVE = "plan_active"
    PROMISE_PENDING = "promise_pending"
    NOT_OWN_PHONE = "not_own_phone"
    PAUSED = "paused"


@dataclass(frozen=True)
class ContactRequest:
    """One contact the service wants to make: an SMS of a template, or a call attempt.

    ``kind`` is the planned action's kind (``sms``, ``plan_invitation``,
    ``plan_reminder`` or ``call``); it tells a plan's own reminder from collection.
    """

    kind: ActionKind
    phone: str
    template: str | None = None

    def __post_init__(self) -> None:
        if self.kind in (ActionKind.AGENCY, ActionKind.LEGAL):
            raise ValueError(f"{self.kind} is a task, not a contact: the guard judges SMS and calls")

    @property
    def channel(self) -> Channel:
        """SMS for the message kinds, call for a call attempt."""
        return Channel.SMS if self.kind.is_message else Channel.CALL


@dataclass(frozen=True)
class ContactHistoryView:
    """What already happened on this account, as aware datetimes.

    ``sms_sent_at``: SMS handed to the gateway (suppressed ones are not contacts).
    ``call_attempts_at``: every dial attempt, answered or not.
    """

    sms_sent_at: tuple[datetime, ...] = ()
    call_attempts_at: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class ComplianceDecision:
    """Allowed, or suppressed with a reason; quiet hours say when the window reopens."""

    allowed: bool
    reason: SuppressionReason | None = None
    next_window_start: datetime | None = field(default=None)

    @classmethod
    def allow(cls) -> "ComplianceDecision":
        return cls(allowed=True)

    @classmethod
    def suppress(cls, reason: SuppressionReason, next_window_start: datetime | None = None) -> "ComplianceDecision":
        return cls(allowed=False, reason=reason, next_window_start=next_window_start)

    @property
    def deferred(self) -> bool:
        """True when the contact must wait for ``next_window_start`` rather than be dropped."""
        return self.reason is SuppressionReason.QUIET_HOURS


def check_contact(
    request: ContactRequest,
    history: ContactHistoryView,
    case: CaseView,
    now: datetime,
    rules: ContactCompliance,
) -> ComplianceDecision:
    """Judge one contact at ``now`` (an aware datetime); see the module docstring for the order."""
    local_now = to_shanghai(now)
    blocked = case_block_reason(request, case, local_now.date())
    if blocked is not None:
        return ComplianceDecision.suppress(blocked)
    if not within_contact_window(local_now, rules):
        return ComplianceDecision.suppress(SuppressionReason.QUIET_HOURS, next_window_start(local_now, rules))
    capped = cap_reason(request.channel, history, local_now.date(), rules)
    if capped is not None:
        return ComplianceDecision.suppress(capped)
    return ComplianceDecision.allow()


def case_block_reason(request: ContactRequest, case: CaseView, business_date: date) -> SuppressionReason | None:
    """The reasons that do not depend on the time of day: whose phone, and the case's state.

    Usable on its own when a call *task* is created (the collector's dial attempts then
    go through :func:`check_contact` for the window and the caps).
    """
    if not is_own_phone(request.phone, case):
        return SuppressionReason.NOT_OWN_PHONE
    if case.paused:
        return SuppressionReason.PAUSED
    if request.kind is ActionKind.PLAN_REMINDER:
        return None if case.plan_active else SuppressionReason.CURED
    if case.plan_active:
        return SuppressionReason.PLAN_ACTIVE
    if case.closed:
        return SuppressionReason.CURED
    if case.promise_pending_on(business_date):
        return SuppressionReason.PROMISE_PENDING
    return None


def cap_reason(
    channel: Channel, history: ContactHistoryView, business_date: date, rules: ContactCompliance
) -> SuppressionReason | None:
    """``daily_cap`` or ``weekly_cap`` when one more contact on this channel would exceed them."""
    if channel is Channel.SMS:
        sent_today = _count_on_days(history.sms_sent_at, business_date, days=1)
        return SuppressionReason.DAILY_CAP if sent_today >= rules.sms_per_day else None
    if _count_on_days(history.call_attempts_at, business_date, days=1) >= rules.calls_per_day:
        return SuppressionReason.DAILY_CAP
    if _count_on_days(history.call_attempts_at, business_date, days=7) >= rules.calls_per_7_days:
        return SuppressionReason.WEEKLY_CAP
    return None


def _count_on_days(moments: tuple[datetime, ...], last_day: date, *, days: int) -> int:
    """How many moments fall on the ``days`` business dates ending with ``last_day``."""
    first_day = last_day - timedelta(days=days - 1)
    return sum(1 for moment in moments if first_day <= to_shanghai(moment).date() <= last_day)


# --- the contact window -------------------------------------------------------------------


def to_shanghai(moment: datetime) -> datetime:
    """The same instant on the Asia/Shanghai clock; a naive datetime is refused (ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; the guard needs an aware datetime")
    return moment.astimezone(SHANGHAI)


def _clock(text: str) -> time:
    """'08:00' -> time(8, 0)."""
    return time.fromisoformat(text)


def within_contact_window(moment: datetime, rules: ContactCompliance) -> bool:
    """True from window_start (inclusive) to window_end (exclusive), Asia/Shanghai."""
    local = to_shanghai(moment).time()
    return _clock(rules.window_start) <= local < _clock(rules.window_end)


def next_window_start(moment: datetime, rules: ContactCompliance) -> datetime:
    """The next opening of the window after a moment outside it: today's 08:00 if it is
    still early, else tomorrow's 08:00 (Asia/Shanghai, as an aware datetime)."""
    local = to_shanghai(moment)
    start = _clock(rules.window_start)
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=SHANGHAI)


# --- phones and masking -----------------------------------------------------------------------

_NOT_DIGITS = re.compile(r"\D")


def normalize_phone(phone: str) -> str:
    """Digits only, without China's +86 / 0086 prefix, so equal numbers compare equal."""
    digits = _NOT_DIGITS.sub("", phone)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def is_own_phone(phone: str, case: CaseView) -> bool:
    """Only the customer's own number, and only while nobody reported it as wrong."""
    if case.own_phone is None or case.phone_reported_wrong:
        return False
    return normalize_phone(phone) == normalize_phone(case.own_phone) != ""


def mask_name(name: str) -> str:
    """Keep the first character only: '张三' -> '张*', '欧阳娜娜' -> '欧***'.

    Idempotent (masking a masked name changes nothing), so it is safe to apply twice.
    A one-character name is masked entirely: keeping it would keep the whole name.
    """
    name = name.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)


def mask_phone(phone: str) -> str:
    """'13812345678' -> '138****5678': the first 3 and last 4 digits of a mobile number.

    Shorter numbers keep only their last 2 digits (none at all when 4 or fewer), so a
    number is never shown whole.
    """
    digits = normalize_phone(phone)
    if len(digits) >= 8:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 2) + digits[-2:]
