"""``baitiao bench night`` end to end, small: every job of the night runs through the real
workers, the portfolio it meets is the one written, and the figures are what happened.

Its speed is not judged here (``make bench`` measures it); this proves the instrument: a
job not run, a service that never got the close's events, or a portfolio the services
disagree on, fails.
"""

from __future__ import annotations

import pytest

from datetime import date

from baitiao.bench_night import NIGHT, night_jobs, run_night_benchmark
from tests.support.system import PG_BASE, fresh_redis_db

pytestmark = pytest.mark.e2e

ACCOUNTS = 3000  # 300 overdue, at 0 to 119 days yesterday; 60 plans


def plans_oracle(accounts: int, overdue_every: int = 10, plan_every: int = 50) -> tuple[int, int]:
    """The plans baitiao/bench_night_plans.py writes, counted here by hand: how many, and how
    many fall overdue tonight (a late plan's second installment due yesterday, the 19th)."""
    plans = [g for g in range(plan_every // 2, accounts + 1, plan_every) if g % overdue_every]
    tonight = [g for g in plans if (g // plan_every) % 3 == 0 and 1 + (g // plan_every) % 28 == 19]
    return len(plans), len(tonight)


def test_the_night_runs_every_job_to_its_end_and_the_services_apply_what_it_causes(redis_db, tmp_path) -> None:
    url = fresh_redis_db(redis_db + 9)
    result = run_night_benchmark(url, f"{PG_BASE}/postgres", ACCOUNTS, 0.10, 120, out_dir=tmp_path)

    assert result["overdue_accounts"] == 300
    plans, overdue_tonight = plans_oracle(ACCOUNTS)
    assert result["active_plans"] == plans == 60 and overdue_tonight == 1
    jobs = {row["job"]: row for row in result["jobs"]}
    assert [row["job"] for row in result["jobs"]] == [name for name, _ in NIGHT]
    assert jobs["statements"]["summary"]["status"] == "no_statement_day"  # the 20th: no statement
    close = jobs["daily-close"]
    assert close["summary"]["bills_overdue"] == 300
    # one delinquency snapshot per overdue account, and the accounts becoming overdue today
    # (DPD 0 yesterday: the 120th and the 240th overdue) assessed once by restructuring
    assert close["events_emitted"]["accounts"] >= 300
    assert close["events_emitted"]["restructuring"] == 2
    monitor = jobs["plan-monitor"]
    assert (monitor["summary"]["overdue"], monitor["summary"]["defaulted"]) == (overdue_tonight, 0)
    assert monitor["events_emitted"]["restructuring"] == overdue_tonight  # plan.installment.overdue
    daily = jobs["collections-daily"]["summary"]
    # the 298 open yesterday, the 2 the close's events opened, and every plan (its reminders)
    assert daily["cases"] == 300 + plans
    dispatch = jobs["contact-dispatch"]["summary"]
    assert dispatch["sent"] == dispatch["contacts"] == daily["contacts_queued"] > 0
    for row in result["jobs"]:
        assert row["settled_s"] >= row["job_s"] > 0
        assert row["settled_s"] == max(row["each_service_quiet_s"].values())
    assert sum(row["settled_s"] for row in result["jobs"]) <= result["night_s"]
    for service, trees in result["peak_memory"].items():
        assert [tree["processes"] >= 1 and tree["largest_process_mib"] > 10 for tree in trees] == [True], service
    # the ratio of the unrounded times (the baseline here takes a few hundredths of a second)
    ratio = result["night_s"] / result["baseline_close_sql_s"]
    assert result["ratio_night_to_close_baseline"] == pytest.approx(ratio, rel=0.05)


def test_the_first_of_the_month_bills_the_purchases_and_sends_the_credit_report(redis_db, tmp_path) -> None:
    url = fresh_redis_db(redis_db + 9)
    result = run_night_benchmark(url, f"{PG_BASE}/postgres", ACCOUNTS, 0.10, 120, 0.02, date(2026, 4, 1), tmp_path)

    assert result["business_date"] == "2026-04-01"
    assert [row["job"] for row in result["jobs"]] == [name for name, _ in night_jobs(date(2026, 4, 1))]
    assert "credit-report" in [row["job"] for row in result["jobs"]] and len(result["jobs"]) == len(NIGHT) + 1
    jobs = {row["job"]: row for row in result["jobs"]}
    bought = sum(1 for g in range(1, ACCOUNTS + 1) if 1 <= g % 10 <= 6)  # six in ten bought in March
    statements = jobs["statements"]
    assert statements["summary"]["bills_issued"] == bought == 1800
    assert statements["events_emitted"]["accounts"] == bought  # bill.issued, one a bill
    report = jobs["credit-report"]["summary"]
    assert (report["month"], report["accounts"], report["already_generated"]) == ("2026-03", ACCOUNTS, False)
    assert jobs["daily-close"]["summary"]["bills_overdue"] == 300
