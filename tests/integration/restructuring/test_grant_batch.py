"""The set-based ``credit.line.granted`` handler of restructuring against one grant at a time.

The reference is the handler before runs (below, as it was): the projection row read and
written through the ORM, one event per transaction. The same wire bodies go into fresh
restructuring databases, on PostgreSQL and on SQLite, once through the reference, then
through the registered handlers in one batch, in batches of three, in batches of one and
in one batch with a poison event (the guarded retry pass). Every row restructuring keeps
(surrogate ids left out) and its outbox must be the same: the ``risk.assessed`` of a line
whose bill goes overdue right after its grant shows that handlers later in the same
transaction read the opening date and income the run wrote.

``tests/support/batch_equivalence.py`` is the accounts service's; what it has for any
service (wire bodies, rows, run counting, objects kept alive) comes from there, the
restructuring databases, applier and state are made here.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from baitiao import registry
from services.restructuring.grants import credit_line_granted_batch
from services.restructuring.handlers import HANDLERS, _account
from services.restructuring.models import BUS, AccountView, Base
from shared.bus.handling import BatchHandler, Delivery, EventApplier, HandlerContext
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, transaction
from shared.events import new_envelope, payloads as p
from shared.events.envelope import read_event
from shared.migrations import upgrade
from shared.money import to_fen
from shared.rules import ProductRules
from tests.support.batch_equivalence import Event, bodies, counting, objects_kept_alive, rows
from tests.support.system import PG_BASE

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 11, 9, 0, tzinfo=SHANGHAI)
Handlers = dict[str, Any]


def credit_line_granted(ctx: HandlerContext, event: p.CreditLineGranted) -> None:
    """The handler before runs: the first opening date and income known are kept."""
    account = _account(ctx, event.account_id)
    account.opened_on = account.opened_on or event.opened_on
    if account.monthly_income_fen is None and event.monthly_income is not None:
        account.monthly_income_fen = to_fen(event.monthly_income)


REFERENCE = {**HANDLERS, "credit.line.granted": credit_line_granted}


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["credit.line.granted"]
    assert isinstance(handler, BatchHandler) and handler.fn is credit_line_granted_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, opened_on: str, income: str | None = None) -> Event:
    payload: dict[str, Any] = {"account_id": account, "customer_id": f"c-{account}", "identity_hash": "h" * 16,
                               "credit_limit": "5000.00", "name": "张三", "phone": "13800005678",
                               "opened_on": opened_on}
    if income is not None:
        payload["monthly_income"] = income
    return "credit.line.granted", payload


def _bill(account: str) -> Event:
    return "bill.issued", {"bill_id": f"{account}-b1", "account_id": account, "statement_date": "2026-02-20",
                           "due_date": "2026-03-10", "amount": "1000.00"}


def _overdue(account: str) -> Event:
    return "bill.overdue", {"bill_id": f"{account}-b1", "account_id": account, "due_date": "2026-03-10",
                            "business_date": "2026-03-11", "dpd": 1, "unpaid_principal": "1000.00"}


def _snapshot(account: str) -> Event:
    return "account.delinquency.updated", {
        "account_id": account, "business_date": "2026-03-11", "max_dpd": 1, "overdue_principal": "500.00",
        "penalty_interest": "0.00", "late_fees": "0.00", "total_overdue": "500.00",
        "bills": [{"bill_id": f"{account}-b1", "due_date": "2026-03-10", "dpd": 1, "unpaid_principal": "500.00",
                   "penalty_interest": "0.00", "late_fee": "0.00"}]}


def _setup() -> list[Event]:
    return [_grant("R1", "2023-01-01", "20000.00"), _bill("R2"), _grant("R3", "2024-06-01")]


def _night() -> list[Event]:
    return [
        _grant("N1", "2025-01-01", "9000.00"),
        _grant("N1", "2020-01-01", "1.00"),  # again in the run: both known already, nothing changes
        _grant("R1", "2020-01-01", "1.00"),  # stored: nothing changes
        _grant("R2", "2022-02-01", "15000.00"),  # a row a bill created first: both filled in
        _grant("R3", "2020-01-01", "7000.00"),  # the income only: the opening date is known
        _grant("N4", "2024-03-01"),
        _grant("N4", "2019-01-01", "5000.00"),  # the income the first grant of the run did not have
        _bill("N2"),  # a per-event handler creates the row (and may hold it) ...
        _grant("N2", "2021-01-01", "30000.00"),  # ... the run fills it in ...
        _overdue("N2"),  # ... and the assessment reads what the run wrote
        _snapshot("N3"),  # a batch handler's run creates the row
        _grant("N3", "2024-01-01"),
        _grant("N5", "2025-06-01", "0.00"),
    ]


# --- machinery (the accounts-only parts of batch_equivalence, for restructuring) -------------


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Fresh, migrated restructuring databases on demand, dropped afterwards."""
    made: list[Engine] = []

    def fresh() -> Engine:
        name = f"bt_grants_{uuid.uuid4().hex[:12]}"
        url = f"{PG_BASE}/{name}" if request.param == "postgresql" else f"sqlite:///{tmp_path / name}.db"
        upgrade(registry.definition("restructuring"), url)
        made.append(make_engine(url))
        return made[-1]

    yield fresh
    for engine in made:
        engine.dispose()
        if request.param == "postgresql":
            admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{engine.url.database}" WITH (FORCE)'))
            admin.dispose()


def _applier(engine: Engine, handlers: Handlers) -> EventApplier:
    return EventApplier("restructuring", engine, BUS, handlers, ProductRules(), FixedClock(), max_attempts=1,
                        event_time=True)


def _apply(engine: Engine, handlers: Handlers, wire: list[bytes], batch: int) -> None:
    applier = _applier(engine, handlers)
    for k in range(0, len(wire), batch):
        deliveries = [Delivery(body=b) for b in wire[k:k + batch]]
        outcome = applier.apply_batch(deliveries)
        assert not outcome.dead_lettered and not outcome.retry, [d.last_error for d in deliveries]


def _boom(ctx: Any, event: Any) -> None:
    raise RuntimeError("poison")


def _apply_with_poison(engine: Engine, handlers: Handlers, wire: list[bytes], at: int) -> None:
    """``wire`` in one batch with a failing ``account.cured`` before ``wire[at]``: the applier
    redoes the batch guarded (every event alone, in a savepoint) and dead-letters the poison."""
    poison = json.dumps(new_envelope("account.cured", {"account_id": "R1", "business_date": "2026-03-11"},
                                     aggregate_id="R1", producer="test", occurred_at=START)).encode()
    outcome = _applier(engine, {**handlers, "account.cured": _boom}).apply_batch(
        [Delivery(body=b) for b in wire[:at] + [poison] + wire[at:]])
    assert outcome.applied == len(wire) and outcome.dead_lettered == 1 and not outcome.retry


def _state(engine: Engine) -> dict[str, Any]:
    """Every row restructuring keeps (surrogate ids left out) and its outbox (payloads parsed)."""
    found = {}
    for table in Base.metadata.sorted_tables:
        if table.name in ("bus_meta", "inbox", "dead_letters"):
            continue
        skip = (table.autoincrement_column.name,) if table.autoincrement_column is not None else ()
        if table is BUS.outbox:
            skip += ("event_id", "published_at")
        found[table.name] = rows(engine, table, *table.primary_key.columns, skip=skip)
    for row in found["outbox"]:
        row["payload"] = json.loads(row["payload"])
    return found


def _prepared(fresh: Callable[[], Engine], setup: list[bytes]) -> Engine:
    engine = fresh()
    _apply(engine, REFERENCE, setup, 1)
    return engine


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_projection_and_events_as_one_by_one(databases: Callable[[], Engine]) -> None:
    setup, night = bodies(_setup(), START - timedelta(days=1)), bodies(_night(), START)
    reference = _prepared(databases, setup)
    _apply(reference, REFERENCE, night, 1)
    expected = _state(reference)
    for batch in (len(night), 3, 1):
        runs: list[int] = []
        engine = _prepared(databases, setup)
        with objects_kept_alive():  # the row bill.issued loaded stays in the session: it must be reloaded
            _apply(engine, counting(HANDLERS, "credit.line.granted", runs), night, batch)
        assert _state(engine) == expected, f"batches of {batch}"
        if batch == len(night):
            assert runs == [7, 1, 2]  # grants | a bill | N2 | overdue, snapshot | grants

    # the guarded pass: a poison event makes the applier redo the batch, the grants in runs of one
    runs = []
    engine = _prepared(databases, setup)
    _apply_with_poison(engine, counting(HANDLERS, "credit.line.granted", runs), night, 4)
    assert runs == [4] + [1] * 10, runs  # the optimistic pass stopped at the poison, then runs of one
    assert _state(engine) == expected, "guarded retry pass"

    # what the scenario says, so that "equal" cannot mean "equally empty"
    views = {a["account_id"]: (str(a["opened_on"]), a["monthly_income_fen"]) for a in expected["account_views"]}
    assert views == {"R1": ("2023-01-01", 2_000_000), "R2": ("2022-02-01", 1_500_000), "R3": ("2024-06-01", 700_000),
                     "N1": ("2025-01-01", 900_000), "N4": ("2024-03-01", 500_000), "N2": ("2021-01-01", 3_000_000),
                     "N3": ("2024-01-01", None), "N5": ("2025-06-01", 0)}
    assert [e["aggregate_id"] for e in expected["outbox"] if e["type"] == "risk.assessed"] == ["N2", "N3"]
    (assessment,) = [a for a in expected["risk_assessments"] if a["account_id"] == "N2"]
    assert assessment["months_on_book"] > 60 and assessment["monthly_income_fen"] == 3_000_000


def test_a_run_costs_a_fixed_number_of_statements(databases: Callable[[], Engine]) -> None:
    """Set-based: a run of 60 grants runs the statements a run of 6 does."""
    engine = _prepared(databases, bodies([_grant("R0", "2023-01-01")], START - timedelta(days=1)))
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    counts = []
    for n, prefix in ((6, "small"), (60, "large")):
        night = [_grant(f"{prefix}-{k}", "2025-01-01", f"{k}.00" if k % 2 else None) for k in range(n)]
        night += [_grant("R0", "2020-01-01", "8000.00"), _grant(f"{prefix}-0", "2020-01-01", "9000.00")]
        statements.clear()
        event.listen(engine, "before_cursor_execute", note)
        try:
            _apply(engine, HANDLERS, bodies(night, START), len(night))
        finally:
            event.remove(engine, "before_cursor_execute", note)
        counts.append(len(statements))
    assert counts[0] == counts[1], statements
    assert len([s for s in statements if "account_views" in s]) == 2  # one read, one upsert
    views = {a["account_id"]: a for a in _state(engine)["account_views"]}
    assert len(views) == 67 and views["R0"]["monthly_income_fen"] == 800_000
    assert views["large-0"]["monthly_income_fen"] == 900_000 and str(views["large-0"]["opened_on"]) == "2025-01-01"


def test_a_row_already_in_the_session_sees_what_the_run_wrote(databases: Callable[[], Engine]) -> None:
    engine = _prepared(databases, bodies([_bill("R2")], START - timedelta(days=1)))
    with transaction(engine) as session:
        held = session.get(AccountView, "R2")
        assert held is not None and held.opened_on is None
        run = []
        for body in bodies([_grant("R2", "2022-02-01", "15000.00")], START):
            envelope, payload = read_event(body)
            run.append((HandlerContext(session, envelope, Outbox(BUS.outbox), ProductRules(), FixedClock()), payload))
        credit_line_granted_batch(run)
        assert (str(held.opened_on), held.monthly_income_fen) == ("2022-02-01", 1_500_000)
