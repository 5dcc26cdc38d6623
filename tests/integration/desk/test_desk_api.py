"""The desk's API on real PostgreSQL and Redis (no workers): roles, masking, the audit
log, commands published as the contract's events, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from baitiao.desk.access import add_user
from baitiao.desk.app import create_app
from baitiao.desk.settings import DeskSettings
from services.accounts.models import Account
from services.collections.models import CollectionCase, CollectorTask, Customer
from shared.db import engine_for
from shared.events.envelope import read_event
from shared.settings import Settings
from tests.support.system import Databases, OutsideSystem, fresh_redis_db

pytestmark = pytest.mark.integration
TODAY = date(2026, 3, 20)
PASSWORD = "correct horse 1"


def _seed(databases: Databases) -> None:
    with Session(engine_for(databases.url("accounts"))) as session:
        for n in (1, 2):
            session.add(
                Account(
                    account_id=f"acc-{n}",
                    customer_id=f"cus-{n}",
                    identity_hash=f"identity-hash-{n}",
                    opened_on=date(2025, 1, 1),
                    granted_limit_fen=1_000_000,
                    credit_limit_fen=1_000_000,
                    unpaid_principal_fen=300_000,
                    level=1,
                    max_dpd=12,
                )
            )
        session.commit()
    with Session(engine_for(databases.url("collections"))) as session:
        for n, (name, phone) in enumerate((("张三丰", "13812345678"), ("李四", "13987654321")), start=1):
            session.add(
                Customer(
                    account_id=f"acc-{n}", customer_id=f"cus-{n}", name=name, phone=phone, opened_on=date(2025, 1, 1)
                )
            )
            session.add(CollectionCase(account_id=f"acc-{n}", status="open", stage="early", max_dpd=12))
            session.add(
                CollectorTask(
                    task_id=f"task-{n}",
                    account_id=f"acc-{n}",
                    kind="call",
                    stage="early",
                    dpd=10 + n,
                    amount_fen=100_000 * n,
                    trigger="strategy",
                    created_on=TODAY,
                    due_by=TODAY,
                    status="open",
                )
            )
        session.commit()


@pytest.fixture(scope="module")
def world(quiet_redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    broker = fresh_redis_db(quiet_redis_db)
    databases = Databases().create()
    _seed(databases)
    data = tmp_path_factory.mktemp("desk")
    settings = Settings(
        broker_url=broker,
        data_dir=Path(data),
        accounts_db_url=databases.url("accounts"),
        collections_db_url=databases.url("collections"),
        restructuring_db_url=databases.url("restructuring"),
    )
    app = create_app(settings, DeskSettings(secret="test-secret", business_date=TODAY, checkout_token="tok"))
    engine = app.state.desk.engine
    for name, role in (("wang", "collector"), ("zhao", "collector"), ("boss", "supervisor"), ("ops", "operator")):
        add_user(engine, name, role, PASSWORD)
    outside = OutsideSystem(broker)
    with TestClient(app) as client:
        yield {"client": client, "outside": outside, "app": app}
    outside.close()
    databases.drop()


def _login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_wrong_password_and_no_login_are_refused(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    assert client.post("/api/login", json={"username": "wang", "password": "nope"}).status_code == 401
    assert (
        client.get("/api/worklist", headers={"Authorization": "Bearer forged.collector.9999999999.x"}).status_code
        == 401
    )
    assert client.get("/api/worklist").status_code == 401


def test_collectors_see_their_own_worklist_masked(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    boss = _login(client, "boss")
    assert (
        client.post("/api/assignments", json={"collector": "wang", "account_ids": ["acc-1"]}, headers=boss).status_code
        == 200
    )
    assert (
        client.post("/api/assignments", json={"collector": "zhao", "account_ids": ["acc-2"]}, headers=boss).status_code
        == 200
    )
    wang = _login(client, "wang")
    rows = client.get("/api/worklist", headers=wang).json()["rows"]
    assert [r["account_id"] for r in rows] == ["acc-1"]
    assert rows[0]["phone"] == "138****5678" and rows[0]["customer"] == "张**"
    assert client.get("/api/worklist?collector=zhao", headers=wang).status_code == 403
    assert client.get("/api/accounts/acc-2", headers=wang).status_code == 403
    view = client.get("/api/accounts/acc-1", headers=wang).json()
    assert view["collections"]["customer"]["phone"] == "138****5678"
    assert "13812345678" not in client.get("/api/accounts/acc-1", headers=wang).text
    every = client.get("/api/worklist", headers=boss).json()
    assert [r["account_id"] for r in every["rows"]] == ["acc-2", "acc-1"]  # deeper DPD first
    assert client.get("/api/accounts/acc-1", headers=boss).json()["collections"]["customer"]["phone"] == "13812345678"


def test_roles_guard_supervision_and_operations(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    wang, boss, ops = _login(client, "wang"), _login(client, "boss"), _login(client, "ops")
    assert client.get("/api/kpis", headers=wang).status_code == 403
    assert client.get("/api/kpis", headers=boss).status_code == 200
    assert client.get("/api/dead-letters", headers=boss).status_code == 403
    assert client.get("/api/dead-letters", headers=ops).json() == []
    jobs = client.get("/api/jobs", headers=ops).json()
    assert {j["service"] for j in jobs} == {"accounts", "collections", "restructuring"}
    assert client.get("/api/audit", headers=ops).status_code == 403


def test_a_promise_is_published_as_the_contract_event_and_audited(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    outside: OutsideSystem = world["outside"]
    wang = _login(client, "wang")
    body = {
        "task_id": "task-1",
        "account_id": "acc-1",
        "outcome": "promise_to_pay",
        "promised_date": "2026-03-25",
        "promised_amount": "500.00",
    }
    response = client.post("/api/commands/collection-outcome", json=body, headers=wang)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    [event] = outside.wait_for("collection.outcome.recorded", lambda p: p["task_id"] == "task-1")
    envelope, payload = read_event(event)
    assert envelope.event_id == event_id and envelope.producer == "collectors-desk"
    assert payload.model_dump(mode="json")["promised_amount"] == "500.00"
    outcome = client.get(f"/api/commands/{event_id}", headers=wang).json()
    assert outcome["type"] == "collection.outcome.recorded" and outcome["task"]["status"] == "open"
    too_late = {**body, "promised_date": "2026-04-30"}
    refused = client.post("/api/commands/collection-outcome", json=too_late, headers=wang)
    assert refused.status_code == 422 and "30 days" in refused.text
    too_much = {**body, "promised_amount": "99999.00"}
    assert client.post("/api/commands/collection-outcome", json=too_much, headers=wang).status_code == 422
    other = {**body, "task_id": "task-2", "account_id": "acc-2"}
    assert client.post("/api/commands/collection-outcome", json=other, headers=wang).status_code == 403
    audit = client.get("/api/audit?actor=wang", headers=_login(client, "boss")).json()
    actions = {(a["action"], a["target"]) for a in audit}
    assert ("command:collection.outcome.recorded", "acc-1") in actions
    assert ("view:account", "acc-1") in actions


def test_operator_commands_carry_the_operator(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    outside: OutsideSystem = world["outside"]
    ops = _login(client, "ops")
    body = {"request_id": "pause-1", "account_id": "acc-1", "reason": "dispute", "operator_id": "someone-else"}
    assert client.post("/api/commands/pause", json=body, headers=ops).status_code == 202
    [event] = outside.wait_for("delinquency.pause.requested", lambda p: p["request_id"] == "pause-1")
    assert event["producer"] == "operators-desk" and event["payload"]["operator_id"] == "ops"


def test_the_checkout_door_answers_202_when_no_decision_comes(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    body = {
        "purchase_id": "pur-1",
        "account_id": "acc-1",
        "amount": "12.00",
        "merchant": "店铺",
        "requested_at": "2026-03-20T10:00:00+08:00",
    }
    assert client.post("/api/purchases", json=body).status_code == 401
    response = client.post("/api/purchases", json=body, headers={"Authorization": "Bearer tok"})
    assert response.status_code == 202  # no accounts worker runs here
    world["outside"].wait_for("purchase.requested", lambda p: p["purchase_id"] == "pur-1")


def test_the_openapi_document_is_generated_from_the_contract_models(world: dict[str, Any]) -> None:
    document = world["client"].get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "CollectionOutcomeRecorded" in schemas and "PurchaseRequested" in schemas
    assert set(schemas["CollectionOutcomeRecorded"]["properties"]) == {
        "task_id",
        "account_id",
        "outcome",
        "promised_amount",
        "promised_date",
    }
    assert "/api/commands/collection-outcome" in document["paths"]


def test_pages_render_chinese_and_refuse_another_collectors_account(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    client.cookies.clear()
    assert client.get("/worklist", follow_redirects=False).status_code == 303
    response = client.post("/login", data={"username": "wang", "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/worklist")
    assert "今日工作" in page.text and "138****5678" in page.text
    assert client.get("/accounts/acc-2").status_code == 403
    form = client.post(
        "/accounts/acc-1/outcome",
        data={"task_id": "task-1", "outcome": "promise_to_pay", "promised_date": "2026-05-01"},
        follow_redirects=False,
    )
    assert form.status_code == 422 and "at most 30 days" in form.text
    client.cookies.clear()
