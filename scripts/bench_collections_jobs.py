"""Time collections-daily (ms per case) and contact-dispatch (ms per SMS) on a fresh
PostgreSQL database with N synthetic accounts (rows written directly, not via events).

    python scripts/bench_collections_jobs.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from baitiao import registry
from services.collections import jobs
from services.collections.models import (
    BUS,
    Bill,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    Customer,
    PromiseToPay,
    Repayment,
)
from services.collections.sms_gateway import FileGateway
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, at_local
from shared.db import make_engine, transaction
from shared.jobs import JobContext
from shared.migrations import upgrade
from shared.rules import ProductRules
from shared.settings import Settings

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DAY = date(2026, 6, 15)


def _dispatch_all(ctx: JobContext, gateway: FileGateway) -> dict[str, int]:
    """Run contact-dispatch slice after slice until nothing is due; the summed counts."""
    totals: dict[str, int] = {}
    while True:
        result = jobs.contact_dispatch(ctx, gateway)
        for key, value in result.summary.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
        if not result.more:
            return totals


def main(n: int) -> None:
    name = f"bt_colbench_{uuid.uuid4().hex[:8]}"
    url = str(make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))
    upgrade(registry.definition("collections"), url)
    engine = make_engine(url)
    try:
        grades = ["A", "B", "C", "D", None]
        with transaction(engine) as s:
            s.execute(
                insert(Customer),
                [
                    dict(
                        account_id=f"a{i}",
                        customer_id=f"c{i}",
                        name="张三丰",
                        phone="13812345678",
                        opened_on=date(2026, 1, 1),
                    )
                    for i in range(n)
                ],
            )
            s.execute(
                insert(CollectionCase),
                [
                    dict(
                        account_id=f"a{i}",
                        status="open",
                        opened_on=date(2026, 1, 1),
                        grade=grades[i % 5],
                        max_dpd=0,
                        overdue_principal_fen=100000,
                        total_overdue_fen=100000,
                        plan_active=False,
                        promise_broken=False,
                        phone_reported_wrong=i % 23 == 0,
                        stage=[None, "pre_due", "grace", "early"][i % 4],
                    )
                    for i in range(n)
                ],
            )
            bills = []
            for i in range(n):
                due = DAY - timedelta(days=(i % 120) - 7)  # dpd -7 .. 112
                bills.append(
                    dict(
                        bill_id=f"b{i}",
                        account_id=f"a{i}",
                        due_date=due,
                        amount_fen=100000,
                        unpaid_fen=100000,
                        dpd=max((DAY - due).days, 0),
                    )
                )
                if i % 3 == 0:
                    bills.append(
                        dict(
                            bill_id=f"b{i}x",
                            account_id=f"a{i}",
                            due_date=due + timedelta(days=30),
                            amount_fen=50000,
                            unpaid_fen=50000,
                            dpd=0,
                        )
                    )
            s.execute(insert(Bill), bills)
            s.execute(
                insert(PromiseToPay),
                [
                    dict(
                        account_id=f"a{i}",
                        recorded_on=DAY - timedelta(days=5),
                        promised_date=DAY - timedelta(days=2),
                        promised_amount_fen=1000,
                        pause_until=DAY - timedelta(days=1 if i % 2 else -2),
                        status="pending",
                    )
                    for i in range(0, n, 17)
                ],
            )
            s.execute(
                insert(Repayment),
                [
                    dict(payment_id=f"p{i}", account_id=f"a{i}", amount_fen=500, applied_on=DAY - timedelta(days=3))
                    for i in range(0, n, 34)
                ],
            )
            s.execute(
                insert(CollectorTask),
                [
                    dict(
                        task_id=f"t{i}",
                        account_id=f"a{i}",
                        kind="call",
                        stage="s",
                        dpd=10,
                        amount_fen=1,
                        trigger="scheduled",
                        created_on=DAY - timedelta(days=3),
                        due_by=DAY,
                        status="open",
                    )
                    for i in range(0, n, 7)
                ],
            )
            # call caps: three dial attempts yesterday and today on some accounts
            s.execute(
                insert(ContactAttempt),
                [
                    dict(
                        account_id=f"a{i}",
                        business_date=DAY,
                        channel="call",
                        kind="call",
                        template="call",
                        stage="early",
                        status="attempted",
                        planned_for=at_local(DAY, "07:00"),
                        attempted_at=at_local(DAY - timedelta(days=k), "07:00"),
                    )
                    for i in range(0, n, 5)
                    for k in (0, 0, 0, 1)
                ],
            )
        rules, clock = ProductRules(), FixedClock()
        tmp = Path(tempfile.mkdtemp())
        settings = Settings(data_dir=tmp, sms_file_path=tmp / "sms.jsonl")

        def ctx(job: str, at: str) -> JobContext:
            clock.set(at_local(DAY, at))
            return JobContext(
                service="collections",
                job=job,
                business_date=DAY,
                at=at,
                engine=engine,
                outbox=Outbox(BUS.outbox),
                rules=rules,
                clock=clock,
                settings=settings,
            )

        c = ctx("collections-daily", "08:00")
        t0 = time.perf_counter()
        cases = 0
        while True:
            r = jobs.collections_daily(c)
            cases += r.summary["cases"]
            if not r.more:
                break
            c.state = r.state
        t_daily = time.perf_counter() - t0
        print(f"daily: {cases} cases, {t_daily:.2f}s, {1000 * t_daily / max(cases, 1):.2f} ms/case, {r.summary}")
        gw = FileGateway(settings.sms_file_path)
        with transaction(engine) as s:  # some pay before the SMS goes out
            s.execute(text("update bills set unpaid_fen = 0 where account_id like '%1' or account_id like '%3'"))
            # a second SMS for some accounts (the daily cap must see the first)
            s.execute(
                text(
                    "insert into contact_attempts (plan_key, account_id, business_date, channel, kind, template,"
                    " stage, dpd, trigger, bill_id, status, planned_for, deferrals, send_attempts) "
                    "select plan_key || '#2', account_id, business_date, channel, kind, template, stage, dpd,"
                    " trigger, bill_id, status, planned_for, 0, 0 from contact_attempts"
                    " where status = 'queued' and account_id like '%7'"
                )
            )
        c = ctx("contact-dispatch", "08:00")
        t0 = time.perf_counter()
        totals = _dispatch_all(c, gw)
        t_disp = time.perf_counter() - t0
        sent = totals.get("sent", 0)
        print(
            f"dispatch: {totals}, {t_disp:.2f}s, {1000 * t_disp / max(sent, 1):.2f} ms/SMS sent, "
            f"{1000 * t_disp / max(totals.get('contacts', 1), 1):.2f} ms/contact"
        )
        # a second daily run: everything already planned (idempotency path)
        c = ctx("collections-daily", "08:00")
        t0 = time.perf_counter()
        while True:
            r = jobs.collections_daily(c)
            if not r.more:
                break
            c.state = r.state
        print(f"daily re-run: {time.perf_counter() - t0:.2f}s {r.summary}")
        with transaction(engine) as s:  # late in the evening: quiet hours defer
            s.execute(
                text(
                    "update contact_attempts set status = 'queued', attempted_at = null "
                    "where channel = 'sms' and id % 3 = 0"
                )
            )
        c = ctx("contact-dispatch", "21:30")
        totals = _dispatch_all(c, gw)
        print("dispatch 21:30:", totals)
        with engine.connect() as conn:
            print("outbox:", dict(conn.execute(text("select type, count(*) from outbox group by type")).all()))
            print(
                "contacts:",
                dict(conn.execute(text("select status, count(*) from contact_attempts group by status")).all()),
            )
            if len(sys.argv) > 2:  # dump the resulting state to compare two versions of the jobs
                with open(sys.argv[2], "w") as out:
                    for q in (
                        "select type, aggregate_id, payload, occurred_at from outbox order by id",
                        "select id, plan_key, account_id, status, reason, planned_for, attempted_at, sent_at, "
                        "deferrals, send_attempts, message_id, bill_id, task_id, stage, dpd, trigger "
                        "from contact_attempts order by id",
                        "select * from sms_messages order by message_id",
                        "select * from collector_tasks order by task_id",
                        "select * from promises order by id",
                        "select * from cases order by pk",
                        "select account_id, business_date, stage from case_stage_history order by id",
                    ):
                        for row in conn.execute(text(q)).all():
                            out.write(repr(tuple(row)) + "\n")
                    out.write(open(settings.sms_file_path).read())
    finally:
        engine.dispose()
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
