"""``kpi_report``'s cohort read from collections' own tables (SQLite, in process): the cases
opened in the period, each followed to its last day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from baitiao.commands.collections import kpi_report
from services.collections.models import Base, Bill, CaseClosure, CaseStageHistory, ContactAttempt, PromiseToPay

D = date.fromisoformat
NOON = datetime(2026, 3, 12, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _bill(account: str, due: str, dpd: int) -> Bill:
    return Bill(
        bill_id=f"{account}-{due}", account_id=account, due_date=D(due), amount_fen=100_000, unpaid_fen=0, dpd=dpd
    )


def _contact(account: str, day: str, channel: str, status: str, reason: str | None = None) -> ContactAttempt:
    return ContactAttempt(
        account_id=account,
        business_date=D(day),
        channel=channel,
        kind=channel,
        template="early" if channel == "sms" else "call",
        stage="early",
        status=status,
        reason=reason,
        planned_for=NOON,
    )


def test_the_cohort_counts_the_cases_opened_in_the_period_as_they_stood_at_its_end(session: Session) -> None:
    session.add_all(
        [
            # overdue 03-11, cured 03-15: opened and cured in March
            _bill("cured", "2026-03-10", 5),
            CaseClosure(account_id="cured", closed_on=D("2026-03-15"), reason="cured"),
            CaseStageHistory(account_id="cured", business_date=D("2026-03-11"), stage="grace"),
            _contact("cured", "2026-03-12", "sms", "sent"),
            PromiseToPay(
                account_id="cured",
                recorded_on=D("2026-03-12"),
                promised_date=D("2026-03-14"),
                pause_until=D("2026-03-15"),
                status="kept",
                decided_on=D("2026-03-15"),
            ),
            # overdue since February and still open: not March's
            _bill("feb", "2026-02-10", 49),
            CaseStageHistory(account_id="feb", business_date=D("2026-03-01"), stage="mid"),
            # overdue 03-21, in early on 03-31, cured in April: open in early as of March's end
            _bill("open", "2026-03-20", 11),
            CaseStageHistory(account_id="open", business_date=D("2026-03-21"), stage="grace"),
            CaseStageHistory(account_id="open", business_date=D("2026-03-25"), stage="early"),
            CaseClosure(account_id="open", closed_on=D("2026-04-03"), reason="cured"),
            _contact("open", "2026-03-26", "call", "attempted", "no_answer"),  # not reached
            # a bill paid on time never opens a case
            _bill("ontime", "2026-03-10", 0),
            # cured in February, overdue again on 03-06 and restructured on 03-20
            _bill("again", "2026-01-10", 3),
            CaseClosure(account_id="again", closed_on=D("2026-01-14"), reason="cured"),
            _bill("again", "2026-03-05", 15),
            CaseClosure(account_id="again", closed_on=D("2026-03-20"), reason="restructured"),
            _contact("again", "2026-03-10", "call", "attempted", "promise_to_pay"),
            _contact("again", "2026-01-12", "sms", "sent"),  # the earlier episode's: not counted
        ]
    )
    session.commit()

    report = kpi_report(session, D("2026-03-01"), D("2026-03-31"))
    cohort = report["cohort"]
    assert cohort["cases"] == 3
    assert cohort["outcomes"] == {"cured": 1, "restructured": 1, "charged_off": 0, "open:early": 1}
    assert cohort["cure_rate"] == {"numerator": 1, "denominator": 3, "value": "0.3333"}
    assert cohort["contact_rate"] == {"numerator": 2, "denominator": 3, "value": "0.6667"}
    assert cohort["promise_kept_rate"] == {"numerator": 1, "denominator": 1, "value": "1.0000"}
    assert cohort["roll_rates"]["grace->early"] == {"numerator": 1, "denominator": 2, "value": "0.5000"}
    assert set(report["definitions"]) >= {"cohort", "roll_rate", "cure_rate", "contact_rate", "promise_kept_rate"}
    # the stock on --from: only the case in collections on 03-01
    assert report["open_on_from"]["cases"] == 1

    february = kpi_report(session, D("2026-02-01"), D("2026-02-28"))["cohort"]
    assert (february["cases"], february["outcomes"]["open:not_judged"]) == (1, 1)  # "feb": judged only in March
