"""The night benchmark's portfolio, written straight into the three services' databases as
the night before left it (set-based: ``generate_series``, a few statements per database).

Accounts: ``bench close``'s portfolio (:func:`baitiao.bench_close.build_portfolio`), with
every ``1/overdue_share``-th account ``k`` days past due yesterday, ``k`` spread over 0 to
``dpd_spread - 1``. Collections knows every customer (name and a phone, for its SMS) and
holds an open case at yesterday's DPD and stage for every account overdue yesterday, with
its bill (the report notice already sent). Six accounts in ten bought something ten days
before, not billed yet (on the 1st the statements job bills it). Restructuring's views hold every account, and
the overdue bills with their episode assessed. A share of the accounts that are not
overdue holds an active installment plan (:mod:`baitiao.bench_night_plans`). Nobody
holds a promise.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, text

from baitiao.bench_close import BUSINESS_DATE, build_portfolio
from baitiao.bench_night_plans import seed_plans
from services.collections.domain.stages import stage_for
from shared.clock import SHANGHAI

# Six accounts in ten (never an overdue one) bought 300.00 ten days before the night,
# not billed yet.
PURCHASE_TENTHS = 6

# The overdue accounts, as every database of the portfolio numbers them: account ``g`` is
# overdue when ``g % every = 0``; ``k`` its DPD yesterday, ``due`` its bill's due date.
_OVERDUE = """
    SELECT g, (g / :every) % :spread AS k, CAST(:yesterday AS date) - ((g / :every) % :spread)::int AS due
    FROM generate_series(CAST(:every AS bigint), CAST(:n AS bigint), CAST(:every AS bigint)) AS g"""

_COLLECTIONS = [
    """INSERT INTO customers (account_id, customer_id, name, phone, opened_on)
       SELECT 'acc-' || g, 'cust-' || g, 'Bench', '138' || lpad((g % 100000000)::text, 8, '0'), DATE '2025-01-01'
       FROM generate_series(1, :n) AS g""",
    f"""INSERT INTO bills (bill_id, account_id, due_date, amount_fen, unpaid_fen, dpd, state_date, disputed_fen,
                          report_notice_on)
        SELECT 'bill-' || o.g, 'acc-' || o.g, o.due, 100000, 100000, o.k, :yesterday, 0,
               CASE WHEN o.k >= 1 THEN o.due + 1 END
        FROM ({_OVERDUE}) o""",
    f"""INSERT INTO cases (account_id, status, opened_on, stage, max_dpd, overdue_principal_fen, total_overdue_fen,
                          delinquency_as_of, plan_active, promise_broken, phone_reported_wrong)
        SELECT 'acc-' || o.g, 'open', o.due + 1, s.stage, o.k, 100000, 100000, :yesterday, false, false, false
        FROM ({_OVERDUE}) o JOIN (VALUES {{stages}}) AS s(dpd, stage) ON s.dpd = o.k
        WHERE o.k >= 1""",
]

# The purchases of the month not billed yet: on the 1st, the statements job bills them.
_PURCHASES = [
    """INSERT INTO purchases (purchase_id, account_pk, amount_fen, merchant, requested_at, posted_on)
       SELECT 'pur-' || g, g, 30000, 'bench', CAST(:requested_at AS timestamptz), CAST(:posted_on AS date)
       FROM generate_series(1, :n) AS g WHERE g % 10 BETWEEN 1 AND :tenths AND g % :every <> 0""",
    """UPDATE accounts SET unpaid_principal_fen = unpaid_principal_fen + 30000
       WHERE pk % 10 BETWEEN 1 AND :tenths AND pk % :every <> 0""",
]

_RESTRUCTURING = [
    """INSERT INTO account_views (account_id, opened_on, max_dpd, delinquency_as_of, episode_assessed)
       SELECT 'acc-' || g, DATE '2025-01-01', 0, :yesterday, false FROM generate_series(1, :n) AS g""",
    f"""UPDATE account_views v SET max_dpd = o.k, episode_assessed = o.k >= 1
        FROM ({_OVERDUE}) o WHERE v.account_id = 'acc-' || o.g""",
    f"""INSERT INTO bill_views (bill_id, account_id, statement_date, due_date, amount_fen, unpaid_principal_fen,
                               penalty_fen, late_fee_fen, dpd, max_dpd, overdue_on, as_of_date)
        SELECT 'bill-' || o.g, 'acc-' || o.g, DATE '2026-03-01', o.due, 100000, 100000, 0, 0, o.k, o.k,
               CASE WHEN o.k >= 1 THEN o.due + 1 END, :yesterday
        FROM ({_OVERDUE}) o""",
]


def seed_portfolio(
    engines: dict[str, Engine],
    accounts: int,
    overdue_share: float,
    dpd_spread: int,
    plan_share: float,
    business_date: date = BUSINESS_DATE,
) -> tuple[int, int]:
    """Write the portfolio into the three (migrated, empty) databases as it stands the
    night of ``business_date``; returns the overdue bills and the active plans."""
    overdue = build_portfolio(engines["accounts"], accounts, overdue_share, dpd_spread, business_date)
    with engines["accounts"].connect() as conn:
        strays = conn.scalar(text("SELECT count(*) FROM accounts WHERE account_id <> 'acc-' || pk"))
    if strays:
        raise RuntimeError("the accounts database was not empty: account pks must run from 1")
    every = max(1, round(1 / overdue_share))
    yesterday = date.fromordinal(business_date.toordinal() - 1)
    params = {"n": accounts, "every": every, "spread": dpd_spread, "yesterday": yesterday}
    posted_on = business_date - timedelta(days=10)
    bought = {
        "n": accounts,
        "every": every,
        "tenths": PURCHASE_TENTHS,
        "posted_on": posted_on,
        "requested_at": datetime.combine(posted_on, time(12), tzinfo=SHANGHAI),
    }
    with engines["accounts"].begin() as conn:
        for statement in _PURCHASES:
            conn.execute(text(statement), bought)
    stages = ", ".join(f"({k}, '{stage_for(k).value}')" for k in range(dpd_spread))
    for service, statements in (("collections", _COLLECTIONS), ("restructuring", _RESTRUCTURING)):
        with engines[service].begin() as conn:
            for statement in statements:
                conn.execute(text(statement.replace("{stages}", stages)), params)
    plans = seed_plans(engines, accounts, every, plan_share, business_date)
    for engine in engines.values():
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return overdue, plans
