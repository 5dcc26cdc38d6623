"""The set-based ``credit.line.granted`` handler of collections against one grant at a time.

The reference is the handler before runs (below, as it was): the customer read and
written through the ORM, the case through ``ensure_case``, one event per transaction.
The same wire bodies go into fresh collections databases, on PostgreSQL and on SQLite,
once through the reference, then through the registered handlers in one batch, in
batches of three, in batches of one and in one batch with a poison event (the guarded
retry pass). Every row collections keeps (surrogate ids left out) and its outbox must be
the same.

``tests/support/batch_equivalence.py`` is the accounts service's; what it has for any
service (wire bodies, rows, run counting, objects kept alive) comes from there, the
collections databases, applier and state are made here.
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
from services.collections.casebook import ensure_case
from services.collections.grants import credit_line_granted_batch
from services.collections.handlers import HANDLERS
from services.collections.models import BUS, Base, Customer
from shared.bus.handling import BatchHandler, Delivery, EventApplier, HandlerContext
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, transaction
from shared.events import new_envelope, payloads as p
from shared.events.envelope import read_event
from shared.migrations import upgrade
from shared.rules import ProductRules
from tests.support.batch_equivalence import Event, bodies, counting, objects_kept_alive, rows
from tests.support.system import PG_BASE

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI)
Handlers = dict[str, Any]


def credit_line_granted(ctx: HandlerContext, event: p.CreditLineGranted) -> None:
    """The handler before runs: keep the customer's name and phone, open the case."""
    customer = ctx.session.get(Customer, event.account_id)
    if customer is None:
        ctx.session.add(Customer(account_id=event.account_id, customer_id=event.customer_id, name=event.name,
                                 phone=event.phone, opened_on=event.opened_on))
    else:  # a re-grant carries the current contact data
        customer.name, customer.phone = event.name, event.phone
    ensure_case(ctx.session, event.account_id, event.opened_on)


REFERENCE = {**HANDLERS, "credit.line.granted": credit_line_granted}


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["credit.line.granted"]
    assert isinstance(handler, BatchHandler) and handler.fn is credit_line_granted_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, name: str, phone: str, opened_on: str = "2026-03-01") -> Event:
    return "credit.line.granted", {"account_id": account, "customer_id": f"c-{account}", "identity_hash": "h" * 16,
                                   "credit_limit": "5000.00", "name": name, "phone": phone, "opened_on": opened_on}


def _bill(account: str, statement_date: str) -> Event:
    return "bill.issued", {"bill_id": f"{account}-b1", "account_id": account, "statement_date": statement_date,
                           "due_date": "2026-03-20", "amount": "1000.00"}


def _setup() -> list[Event]:
    return [_grant("K1", "张三", "13800001111", "2026-01-01"), _bill("K2", "2026-02-01"),
            _grant("K3", "钱七", "13800003333", "2026-01-02")]


def _night() -> list[Event]:
    return [
        _grant("N1", "李四", "13900001111"),
        _grant("N1", "李四四", "13900002222", "2026-03-02"),  # again in the run: the new contact data only
        _grant("K1", "张三丰", "13800009999", "2026-03-03"),  # stored: the new contact data, the case as it is
        _grant("K2", "王五", "13700001111"),  # a case opened by a bill before: kept as it is
        _grant("N2", "赵六", "13600001111"),
        _bill("N2", "2026-03-01"),  # a per-event handler between two runs finds the case the run opened
        _grant("N2", "赵六六", "13600002222"),  # opened by an earlier run of the same batch
        _grant("N3", "孙八", "13500001111", "2026-03-04"),
        _grant("K3", "钱七", "13800003333", "2026-01-02"),  # the same grant again: nothing changes
    ]


# --- machinery (the accounts-only parts of batch_equivalence, for collections) ---------------


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Fresh, migrated collections databases on demand, dropped afterwards."""
    made: list[Engine] = []

    def fresh() -> Engine:
        name = f"bt_grants_{uuid.uuid4().hex[:12]}"
        url = f"{PG_BASE}/{name}" if request.param == "postgresql" else f"sqlite:///{tmp_path / name}.db"
        upgrade(registry.definition("collections"), url)
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
    return EventApplier("collections", engine, BUS, handlers, ProductRules(), FixedClock(), max_attempts=1,
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
    """``wire`` in one batch with a failing ``plan.completed`` before ``wire[at]``: the applier
    redoes the batch guarded (every event alone, in a savepoint) and dead-letters the poison."""
    poison = json.dumps(new_envelope("plan.completed", {"plan_id": "pl-poison", "account_id": "K1",
                                                        "completed_on": "2026-03-01"},
                                     aggregate_id="K1", producer="test", occurred_at=START)).encode()
    outcome = _applier(engine, {**handlers, "plan.completed": _boom}).apply_batch(
        [Delivery(body=b) for b in wire[:at] + [poison] + wire[at:]])
    assert outcome.applied == len(wire) and outcome.dead_lettered == 1 and not outcome.retry


def _state(engine: Engine) -> dict[str, Any]:
    """Every row collections keeps (surrogate ids left out) and its outbox (payloads parsed)."""
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


def test_batches_give_the_same_customers_and_cases_as_one_by_one(databases: Callable[[], Engine]) -> None:
    setup, night = bodies(_setup(), START - timedelta(days=1)), bodies(_night(), START)
    reference = _prepared(databases, setup)
    _apply(reference, REFERENCE, night, 1)
    expected = _state(reference)
    for batch in (len(night), 3, 1):
        runs: list[int] = []
        engine = _prepared(databases, setup)
        with objects_kept_alive():
            _apply(engine, counting(HANDLERS, "credit.line.granted", runs), night, batch)
        assert _state(engine) == expected, f"batches of {batch}"
        if batch == len(night):
            assert runs == [5, 3]  # grants | a bill | grants

    # the guarded pass: a poison event makes the applier redo the batch, the grants in runs of one
    runs = []
    engine = _prepared(databases, setup)
    _apply_with_poison(engine, counting(HANDLERS, "credit.line.granted", runs), night, 3)
    assert runs == [3] + [1] * 8, runs  # the optimistic pass stopped at the poison, then runs of one
    assert _state(engine) == expected, "guarded retry pass"

    # what the scenario says, so that "equal" cannot mean "equally empty"
    customers = {c["account_id"]: (c["name"], c["phone"], str(c["opened_on"])) for c in expected["customers"]}
    assert customers == {
        "K1": ("张三丰", "13800009999", "2026-01-01"), "K2": ("王五", "13700001111", "2026-03-01"),
        "K3": ("钱七", "13800003333", "2026-01-02"), "N1": ("李四四", "13900002222", "2026-03-01"),
        "N2": ("赵六六", "13600002222", "2026-03-01"), "N3": ("孙八", "13500001111", "2026-03-04")}
    cases = [(c["account_id"], str(c["opened_on"]), c["status"]) for c in expected["cases"]]
    assert cases == [("K1", "2026-01-01", "open"), ("K2", "2026-02-01", "open"), ("K3", "2026-01-02", "open"),
                     ("N1", "2026-03-01", "open"), ("N2", "2026-03-01", "open"), ("N3", "2026-03-04", "open")]
    assert [b["bill_id"] for b in expected["bills"]] == ["K2-b1", "N2-b1"] and expected["outbox"] == []


def test_a_run_costs_a_fixed_number_of_statements(databases: Callable[[], Engine]) -> None:
    """Set-based: a run of 60 grants runs the statements a run of 6 does."""
    engine = _prepared(databases, bodies([_grant("K0", "张三", "13800001111")], START - timedelta(days=1)))
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    counts = []
    for n, prefix in ((6, "small"), (60, "large")):
        night = [_grant(f"{prefix}-{k}", "李四", f"139{k:08d}") for k in range(n)]
        night += [_grant("K0", "张三丰", "13800009999"), _grant(f"{prefix}-0", "李四四", "13900009999")]
        statements.clear()
        event.listen(engine, "before_cursor_execute", note)
        try:
            _apply(engine, HANDLERS, bodies(night, START), len(night))
        finally:
            event.remove(engine, "before_cursor_execute", note)
        counts.append(len(statements))
    assert counts[0] == counts[1], statements
    assert [s.split(" (")[0] for s in statements if "customers" in s or "cases" in s] == [
        "INSERT INTO customers", "INSERT INTO cases"]
    found = _state(engine)
    assert len(found["customers"]) == len(found["cases"]) == 67
    assert {c["account_id"]: c["name"] for c in found["customers"]}["large-0"] == "李四四"


def _run(session: Any, events: list[Event]) -> list[tuple[HandlerContext, Any]]:
    """The handler's arguments for ``events``, inside an open transaction."""
    run = []
    for body in bodies(events, START):
        envelope, payload = read_event(body)
        run.append((HandlerContext(session, envelope, Outbox(BUS.outbox), ProductRules(), FixedClock()), payload))
    return run


def test_a_customer_already_in_the_session_sees_the_new_contact_data(databases: Callable[[], Engine]) -> None:
    engine = _prepared(databases, bodies([_grant("K1", "张三", "13800001111")], START - timedelta(days=1)))
    with transaction(engine) as session:
        held = session.get(Customer, "K1")
        assert held is not None and held.phone == "13800001111"
        credit_line_granted_batch(_run(session, [_grant("K1", "张三丰", "13800009999")]))
        assert (held.name, held.phone) == ("张三丰", "13800009999")


def test_a_failing_run_names_nobody(databases: Callable[[], Engine]) -> None:
    """The applier logs a failing handler's error and keeps it with the dead letter: the
    statement's parameters (names and phones) are left out of it."""
    engine = databases()
    with pytest.raises(Exception) as failed:
        with transaction(engine) as session:
            session.execute(text("DROP TABLE customers"))  # undone with the transaction
            credit_line_granted_batch(_run(session, [_grant("N1", "李四", "13900001111"),
                                                     _grant("N2", "赵六", "13600001111")]))
    message = str(failed.value)
    assert "INSERT INTO customers" in message and "parameters hidden" in message
    assert not any(secret in message for secret in ("李四", "赵六", "13900001111", "13600001111"))
