"""``baitiao dlq list|replay|discard`` on real PostgreSQL databases and a real Redis.

A dead letter's body is the event as it arrived: a credit line carries the customer's
name, phone and identity hash. Whatever the operator reads of it is masked as the logs
are; a discarded letter stays on the record, hidden from the listing and never replayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import redis
from sqlalchemy import create_engine, insert, select

from baitiao import registry
from tests.support.cli import assert_one_line_error, cli_env, run_cli
from tests.support.customers import credit_line
from tests.support.system import Databases, envelope, fresh_redis_db

IDENTITY = "9f86d081884c7d659a2feaa0c55ad015"
PHONE = "13812345678"


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases().create(("accounts", "collections", "restructuring"))
    try:
        yield databases
    finally:
        databases.drop()


@pytest.fixture(scope="module")
def broker(redis_db: int) -> str:
    return fresh_redis_db(redis_db + 2)


@pytest.fixture()
def env(pg: Databases, broker: str, tmp_path) -> dict[str, str]:
    return cli_env(BAITIAO_BROKER_URL=broker, BAITIAO_DATA_DIR=str(tmp_path / "data"), **pg.env())


def _letter(pg: Databases, service: str = "accounts") -> int:
    """A credit line the service could not apply, as the consumer stores it."""
    body = envelope("credit.line.granted", credit_line("acc-dlq-1", identity=IDENTITY), "acc-dlq-1")
    table = registry.definition(service).bus.dead_letters
    engine = create_engine(pg.url(service))
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    insert(table)
                    .values(
                        queue=f"{service}.events",
                        event_id=body["event_id"],
                        type=body["type"],
                        reason=f"1 validation error: phone input_value='{PHONE}' is not allowed",
                        body=json.dumps(body, ensure_ascii=False),
                        attempts=5,
                        created_at=datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc),
                    )
                    .returning(table.c.id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _row(pg: Databases, number: int, service: str = "accounts") -> dict:
    table = registry.definition(service).bus.dead_letters
    engine = create_engine(pg.url(service))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(table).where(table.c.id == number)).one()._mapping)
    finally:
        engine.dispose()


def _listed(env: dict[str, str], *flags: str) -> list[dict]:
    result = run_cli("dlq", "list", "--json", *flags, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_listing_masks_personal_data_in_json_and_in_the_table(pg, env) -> None:
    number = _letter(pg)
    rows = [r for r in _listed(env) if r["id"] == f"accounts:{number}"]
    assert len(rows) == 1
    payload = rows[0]["body"]["payload"]
    assert payload["name"] == "张*"
    assert payload["phone"] == "138****5678"
    assert payload["identity_hash"] == "***"
    assert payload["account_id"] == "acc-dlq-1"  # what is not personal stays readable
    assert "138****5678" in rows[0]["reason"]
    table = run_cli("dlq", "list", env=env)
    assert table.returncode == 0, table.stderr
    for output in (json.dumps(rows, ensure_ascii=False), table.stdout):
        assert PHONE not in output and IDENTITY not in output and "张三" not in output
    assert f"accounts:{number}" in table.stdout


def test_a_discarded_letter_is_hidden_kept_on_record_and_never_replayed(pg, env, broker) -> None:
    number = _letter(pg)
    ident = f"accounts:{number}"
    done = run_cli("dlq", "discard", ident, "--reason", "duplicate of a line granted by hand", env=env)
    assert done.returncode == 0, done.stderr
    row = _row(pg, number)
    assert row["discarded_at"] is not None and row["discard_reason"] == "duplicate of a line granted by hand"
    assert ident not in [r["id"] for r in _listed(env)]
    shown = [r for r in _listed(env, "--all") if r["id"] == ident]
    assert shown and shown[0]["state"] == "discarded"
    assert shown[0]["discard_reason"] == "duplicate of a line granted by hand"

    refused = run_cli("dlq", "replay", ident, env=env)
    assert_one_line_error(refused, contains="discarded", code=1)
    assert redis.Redis.from_url(broker).llen("accounts.events") == 0, "a discarded letter was published"
    assert _row(pg, number)["replayed_at"] is None
    assert_one_line_error(run_cli("dlq", "discard", ident, "--reason", "again", env=env), contains="already discarded")


def test_a_discard_needs_a_reason(pg, env) -> None:
    number = _letter(pg)
    assert_one_line_error(run_cli("dlq", "discard", f"accounts:{number}", env=env), contains="--reason", code=2)
    assert_one_line_error(
        run_cli("dlq", "discard", f"accounts:{number}", "--reason", "  ", env=env), contains="--reason", code=2
    )
    assert _row(pg, number)["discarded_at"] is None


def test_replay_publishes_an_open_letter_to_its_queue(pg, env, broker) -> None:
    number = _letter(pg, "collections")
    client = redis.Redis.from_url(broker)
    before = client.llen("collections.events")
    result = run_cli("dlq", "replay", f"collections:{number}", env=env)
    assert result.returncode == 0, result.stderr
    assert client.llen("collections.events") == before + 1
    assert _row(pg, number, "collections")["replayed_at"] is not None
    assert f"collections:{number}" not in [r["id"] for r in _listed(env)]
    assert_one_line_error(
        run_cli("dlq", "discard", f"collections:{number}", "--reason", "late", env=env), contains="already replayed"
    )
