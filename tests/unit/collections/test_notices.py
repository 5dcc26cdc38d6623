"""The notice before a bureau report and the catch-up of missed dates (RULES 5.4, 6.10, 6.11)."""

from __future__ import annotations

from datetime import date

from services.accounts.domain.credit_report import overdue_reportable
from services.collections.domain.notices import (
    BillNotice,
    NoticeChannel,
    bills_awaiting_notice,
    contacts_on,
    dates_to_run,
    notice_channel,
)

D = date.fromisoformat


def test_an_overdue_bill_is_reported_only_once_noticed_by_the_month_end() -> None:
    assert not overdue_reportable(None, D("2026-03-31"))
    assert not overdue_reportable(D("2026-04-01"), D("2026-03-31"))  # the next report carries it
    assert overdue_reportable(D("2026-03-31"), D("2026-03-31"))
    assert overdue_reportable(D("2026-03-15"), D("2026-03-31"))


def test_the_overdue_bills_without_a_notice_await_one_oldest_first() -> None:
    bills = [
        BillNotice("b3", D("2026-04-10"), None),
        BillNotice("b1", D("2026-03-10"), None),
        BillNotice("b2", D("2026-03-10"), D("2026-03-11")),
        BillNotice("b4", D("2026-03-15"), None),
    ]
    assert bills_awaiting_notice(bills, D("2026-03-15")) == ["b1"]  # b4 is due today: not overdue yet
    assert bills_awaiting_notice(bills, D("2026-04-11")) == ["b1", "b4", "b3"]
    assert bills_awaiting_notice([], D("2026-04-11")) == []


def test_the_notice_goes_by_letter_when_no_own_phone_is_known() -> None:
    assert notice_channel(own_phone_known=True) is NoticeChannel.SMS
    assert notice_channel(own_phone_known=False) is NoticeChannel.LETTER


def test_a_run_after_missed_dates_runs_each_of_them_in_order() -> None:
    assert dates_to_run(D("2026-03-10"), D("2026-03-15")) == [
        D("2026-03-11"),
        D("2026-03-12"),
        D("2026-03-13"),
        D("2026-03-14"),
        D("2026-03-15"),
    ]
    assert dates_to_run(D("2026-03-14"), D("2026-03-15")) == [D("2026-03-15")]


def test_a_first_run_an_earlier_date_or_a_date_again_runs_that_date_alone() -> None:
    assert dates_to_run(None, D("2026-03-15")) == [D("2026-03-15")]
    assert dates_to_run(D("2026-03-15"), D("2026-03-15")) == [D("2026-03-15")]
    assert dates_to_run(D("2026-03-20"), D("2026-03-15")) == [D("2026-03-15")]


def test_only_the_business_date_plans_contacts() -> None:
    assert contacts_on(D("2026-03-15"), D("2026-03-15"))
    assert not contacts_on(D("2026-03-14"), D("2026-03-15"))
