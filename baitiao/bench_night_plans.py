"""The night benchmark's installment plans, written into the three services' databases as
restructuring, accounts and collections hold an active plan (set-based, like the rest of
the portfolio, :mod:`baitiao.bench_night_portfolio`).

Every ``1/share``-th account (never one of the overdue ones) holds an active plan of
600.00 over 6 months at a monthly fee of 0.6%, equal principal, accepted in January on
day ``d`` (1 to 28, spread over the accounts), so its installments fall due on the
``d``-th of each month from February on: the schedule is the domain's own
(:func:`build_schedule`). The first installment is paid; the second (due in March) is paid
if it fell due before the business date, except on every third plan, which is late with
it: its overdue notice went out the night after it fell due, or goes out tonight when that
is tonight. No plan is past the default rule (DPD 31, two installments overdue): the plan
monitor finds what a steady night finds (plans due, a few new notices), and
collections-daily sends the plans' reminders.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from sqlalchemy import Engine, text

from services.restructuring.domain.schedule import Schedule, build_schedule

PRINCIPAL = Decimal("600.00")
TERM = 6
MONTHLY_FEE_RATE = Decimal("0.006")
START_DAYS = 28


def schedules() -> dict[int, Schedule]:
    """The plan of each start day, January 2026."""
    return {
        d: build_schedule("equal_principal", PRINCIPAL, TERM, MONTHLY_FEE_RATE, date(2026, 1, d))
        for d in range(1, START_DAYS + 1)
    }


def _fen(amount: Decimal) -> int:
    return int(amount * 100)


# The plan accounts: ``g`` holds a plan when ``g % every = every / 2`` and is not overdue;
# ``d`` its start day, ``late`` whether it is late with its second installment.
_PLANS = """
    SELECT g, CAST(1 + (g / CAST(:plan_every AS bigint)) % CAST(:days AS bigint) AS int) AS d,
           (g / CAST(:plan_every AS bigint)) % 3 = 0 AS late
    FROM generate_series(CAST(:half_every AS bigint), CAST(:n AS bigint), CAST(:plan_every AS bigint)) AS g
    WHERE g % CAST(:every AS bigint) <> 0"""

# One row per installment: start day, period, due date, principal, fee (the domain's schedule).
_LINES = "(VALUES {lines}) AS l(d, period, due, principal_fen, fee_fen)"

# Paid: the first, and the second when it fell due before today unless the plan is late.
_PAID = "(l.period = 1 OR (l.period = 2 AND l.due < :today AND NOT p.late))"
_NOTIFIED = f"CASE WHEN NOT {_PAID} AND l.due + 1 < :today THEN l.due + 1 END"

_RESTRUCTURING = [
    f"""INSERT INTO plans (plan_id, offer_id, account_id, status, method, monthly_fee_rate, principal_fen, term,
                          start_date, accepted_at, adjustments_made, bill_ids, fees_waived_fen, fees_cancelled_fen,
                          days_held)
        SELECT 'plan-' || p.g, 'offer-' || p.g, 'acc-' || p.g, 'active', 'equal_principal', :rate, :principal, :term,
               DATE '2026-01-01' + (p.d - 1), CAST(:accepted_at AS timestamptz), 0, '["pbill-' || p.g || '"]', 0, 0, 0
        FROM ({_PLANS}) p ORDER BY p.g""",
    f"""INSERT INTO plan_installments (plan_pk, period, due_date, principal_fen, fee_fen, paid_principal_fen,
                                      paid_fee_fen, status, paid_on, overdue_notified_on)
        SELECT pl.pk, l.period, l.due, l.principal_fen, l.fee_fen,
               CASE WHEN {_PAID} THEN l.principal_fen ELSE 0 END, CASE WHEN {_PAID} THEN l.fee_fen ELSE 0 END,
               CASE WHEN {_PAID} THEN 'paid' ELSE 'open' END, CASE WHEN {_PAID} THEN l.due END, {_NOTIFIED}
        FROM ({_PLANS}) p JOIN plans pl ON pl.plan_id = 'plan-' || p.g JOIN {_LINES} ON l.d = p.d""",
    f"""UPDATE account_views v SET active_plan_id = 'plan-' || p.g FROM ({_PLANS}) p
        WHERE v.account_id = 'acc-' || p.g""",
]

_COLLECTIONS = [
    f"""INSERT INTO plans (plan_id, account_id, status, activated_on)
        SELECT 'plan-' || p.g, 'acc-' || p.g, 'active', DATE '2026-01-01' + (p.d - 1) FROM ({_PLANS}) p""",
    f"""INSERT INTO plan_installments (plan_id, period, due_date, total_fen, status)
        SELECT 'plan-' || p.g, l.period, l.due, l.principal_fen + l.fee_fen,
               CASE WHEN {_PAID} THEN 'paid' WHEN {_NOTIFIED} IS NOT NULL THEN 'overdue' ELSE 'due' END
        FROM ({_PLANS}) p JOIN {_LINES} ON l.d = p.d""",
    f"""INSERT INTO cases (account_id, status, opened_on, closed_reason, closed_on, stage, max_dpd,
                          overdue_principal_fen, total_overdue_fen, delinquency_as_of, plan_active, active_plan_id,
                          promise_broken, phone_reported_wrong)
        SELECT 'acc-' || p.g, 'closed', DATE '2025-12-21', 'restructured', DATE '2026-01-01' + (p.d - 1), NULL, 0,
               0, 0, :yesterday, true, 'plan-' || p.g, false, false
        FROM ({_PLANS}) p""",
]

_ACCOUNTS = [
    f"""INSERT INTO plans (plan_id, account_pk, status, principal_fen, outstanding_fen, total_fee_fen, paid_fen,
                          activated_on)
        SELECT 'plan-' || p.g, p.g, 'active', :principal, :payable - paid.fen, :total_fee, paid.fen,
               DATE '2026-01-01' + (p.d - 1)
        FROM ({_PLANS}) p
        CROSS JOIN LATERAL (SELECT sum(l.principal_fen + l.fee_fen) AS fen FROM {_LINES} WHERE l.d = p.d AND {_PAID})
             AS paid""",
]


def seed_plans(engines: dict[str, Engine], accounts: int, overdue_every: int, share: float, today: date) -> int:
    """Write the plans into the three (seeded) databases; returns how many there are."""
    if share <= 0:
        return 0
    plan_every = max(2, round(1 / share))
    plans = schedules()
    lines = ", ".join(
        f"({d}, {line.period}, DATE '{line.due_date.isoformat()}', {_fen(line.principal)}, {_fen(line.fee)})"
        for d, schedule in plans.items()
        for line in schedule.periods
    )
    template = plans[1]
    params = {
        "n": accounts,
        "every": overdue_every,
        "plan_every": plan_every,
        "half_every": plan_every // 2,
        "days": START_DAYS,
        "today": today,
        "yesterday": date.fromordinal(today.toordinal() - 1),
        "rate": str(MONTHLY_FEE_RATE),
        "principal": _fen(PRINCIPAL),
        "term": TERM,
        "accepted_at": datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc),
        "payable": _fen(template.total_payable),
        "total_fee": _fen(template.total_fee),
    }
    for service, statements in (
        ("restructuring", _RESTRUCTURING),
        ("collections", _COLLECTIONS),
        ("accounts", _ACCOUNTS),
    ):
        with engines[service].begin() as conn:
            for statement in statements:
                conn.execute(text(statement.replace("{lines}", lines)), params)
    with engines["restructuring"].connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM plans WHERE status = 'active'")) or 0)
