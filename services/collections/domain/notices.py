"""The notice before a bureau report, and what a run of a missed date may still do.

Notice before report (RULES 5.4 and 6.10, 征信业管理条例 Art. 15): a customer is told that
an overdue bill will be reported before the bureau file carries it. The first grace SMS
(the strategy's ``bureau_notice_template``) is that notice; whenever an overdue bill has
none yet (its run was missed, the SMS was suppressed, the phone is not the customer's
own) the day's run gives it at the next allowed contact moment: an SMS through the
compliance guard when the customer's own phone is known, else a letter (a collector task
of kind ``letter``, counted as the notice the day it is created).

Catch-up (RULES 6.11): a run for T after a last done date L runs L+1 … T in order. A
missed date's run judges promises and records stages as of that date, but contacts
that were due then are not made late: the strategy brings a missed task day forward
itself (``Trigger.CATCH_UP``), and the one contact owed whatever the date, the notice,
goes out on T.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class NoticeChannel(StrEnum):
    SMS = "sms"
    LETTER = "letter"


# Business days a letter task gives the back office to post the notice.
LETTER_DUE_DAYS = 1
# Why a missed date's contact was not made (the summary's reason).
SKIPPED_PAST_DATE = "past_date"


@dataclass(frozen=True)
class BillNotice:
    """What the notice rule needs of one collectable bill."""

    bill_id: str
    due_date: date
    report_notice_on: date | None


def bills_awaiting_notice(bills: Iterable[BillNotice], business_date: date) -> list[str]:
    """The overdue bills (due before the business date) whose customer was not yet told
    they will be reported, by due date then id."""
    waiting = [b for b in bills if b.due_date < business_date and b.report_notice_on is None]
    return [b.bill_id for b in sorted(waiting, key=lambda b: (b.due_date, b.bill_id))]


def notice_channel(own_phone_known: bool) -> NoticeChannel:
    """An SMS to the customer's own phone; a letter when no own phone is known."""
    return NoticeChannel.SMS if own_phone_known else NoticeChannel.LETTER


def dates_to_run(last_done: date | None, business_date: date) -> list[date]:
    """The dates a run for ``business_date`` runs, in order.

    After a last done date before it: every date since, up to it. Otherwise (never run,
    or the date itself or a later one done): that date alone; a date run again plans
    nothing twice (its plan keys), so an operator may run any date by hand."""
    if last_done is None or last_done >= business_date:
        return [business_date]
    days = (business_date - last_done).days
    return [last_done + timedelta(days=i) for i in range(1, days + 1)]


def contacts_on(day: date, business_date: date) -> bool:
    """Whether a day's run plans contacts: only the run's own business date does."""
    return day >= business_date
