"""Every failure of ``baitiao`` is one line on stderr and a non-zero exit, never a traceback.

The commands run as real processes against real PostgreSQL databases and a real Redis,
with the environment an operator would have got wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from baitiao.cli import main
from tests.support.cli import assert_one_line_error, cli_env, run_cli
from tests.support.system import Databases, fresh_redis_db


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases().create()
    try:
        yield databases
    finally:
        databases.drop()


@pytest.fixture(scope="module")
def broker(redis_db: int) -> str:
    return fresh_redis_db(redis_db + 1)


@pytest.fixture()
def env(pg: Databases, broker: str, tmp_path) -> dict[str, str]:
    return cli_env(BAITIAO_BROKER_URL=broker, BAITIAO_DATA_DIR=str(tmp_path / "data"), **pg.env())


def test_replaying_a_dead_letter_that_is_not_there(env) -> None:
    assert_one_line_error(run_cli("dlq", "replay", "accounts:999", env=env), contains="no dead letter 999", code=1)


def test_a_dead_letter_id_that_names_no_service(env) -> None:
    assert_one_line_error(run_cli("dlq", "discard", "acc:1", "--reason", "x", env=env), contains="SERVICE:N", code=2)


def test_an_impossible_date_is_a_usage_error(env) -> None:
    line = assert_one_line_error(run_cli("plan", "offers", "acc-1", "--date", "2026-02-30", env=env), code=2)
    assert "'--date'" in line and "2026-02-30" in line


def test_an_income_that_is_no_amount(env) -> None:
    assert_one_line_error(run_cli("plan", "offers", "acc-1", "--income", "abc", env=env), contains="--income", code=2)


def test_an_amount_with_fractions_of_a_fen(env) -> None:
    assert_one_line_error(
        run_cli("plan", "offers", "acc-1", "--income", "1000.001", env=env), contains="more than two decimals", code=2
    )


def test_a_missing_rules_file(env) -> None:
    result = run_cli("plan", "offers", "acc-1", env={**env, "BAITIAO_RULES_FILE": "/nope"})
    assert_one_line_error(result, contains="rules file (BAITIAO_RULES_FILE) /nope: No such file", code=1)


def test_a_rules_file_that_is_a_directory(env, tmp_path) -> None:
    result = run_cli("plan", "offers", "acc-1", env={**env, "BAITIAO_RULES_FILE": str(tmp_path)})
    assert_one_line_error(result, contains="Is a directory", code=1)


def test_a_rules_file_with_a_wrong_value(env, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("overdue:\n  grace_period_days: many\n", encoding="utf-8")
    result = run_cli("plan", "offers", "acc-1", env={**env, "BAITIAO_RULES_FILE": str(rules)})
    line = assert_one_line_error(result, code=1)
    assert "invalid ProductRules" in line and str(rules) in line


def test_a_worker_with_a_missing_rules_file_fails_before_starting(env) -> None:
    result = run_cli("worker", "accounts", env={**env, "BAITIAO_RULES_FILE": "/nope"}, timeout=60)
    assert_one_line_error(result, contains="/nope", code=1)


@pytest.mark.parametrize("command", [("dlq", "list"), ("status",), ("account", "show", "acc-1")])
def test_a_provider_style_postgres_url_is_read_with_psycopg(env, command) -> None:
    """``postgres://`` (what hosting providers hand out) names the driver the project ships:
    the one line is about the database that is missing, never about a driver."""
    result = run_cli(*command, env={**env, "BAITIAO_ACCOUNTS_DB_URL": "postgres://postgres@127.0.0.1:5432/x"})
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    said = result.stderr + result.stdout
    assert '"x" does not exist' in said and "psycopg2" not in said and "NoSuchModule" not in said


def test_a_database_url_that_is_no_url(env) -> None:
    result = run_cli("dlq", "list", env={**env, "BAITIAO_COLLECTIONS_DB_URL": "not a url"})
    assert_one_line_error(result, contains="BAITIAO_COLLECTIONS_DB_URL", code=1)


def test_a_database_server_that_does_not_answer(env) -> None:
    result = run_cli(
        "dlq",
        "list",
        "--service",
        "accounts",
        env={**env, "BAITIAO_ACCOUNTS_DB_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
    )
    assert_one_line_error(result, contains="database error", code=1)


def test_a_bad_setting(env) -> None:
    result = run_cli("jobs", "list", env={**env, "BAITIAO_EVENT_BATCH_SIZE": "lots"})
    assert_one_line_error(result, contains="invalid setting BAITIAO_EVENT_BATCH_SIZE", code=1)


def test_a_broker_that_does_not_answer(env) -> None:
    started = time.monotonic()
    result = run_cli(
        "jobs",
        "run",
        "statements",
        "--date",
        "2026-03-01",
        env={**env, "BAITIAO_BROKER_URL": "redis://127.0.0.1:1/0"},
        timeout=60,
    )
    assert_one_line_error(result, contains="broker unreachable", code=1)
    assert time.monotonic() - started < 20


def test_an_impossible_job_date_is_refused_before_anything_is_sent(env, broker) -> None:
    result = run_cli("jobs", "run", "statements", "--date", "2026-13-01", env=env)
    assert_one_line_error(result, contains="'--date'", code=2)
    result = run_cli("jobs", "run", "contact-dispatch", "--date", "2026-03-01", "--at", "9h", env=env)
    assert_one_line_error(result, contains="'--at'", code=2)
    assert redis.Redis.from_url(broker).llen("accounts.jobs") == 0


def test_a_job_with_no_worker_is_refused_in_seconds_and_not_sent(env, broker) -> None:
    started = time.monotonic()
    result = run_cli("jobs", "run", "statements", "--date", "2026-03-01", env=env, timeout=60)
    assert_one_line_error(result, contains="no worker serves accounts.jobs", code=1)
    assert time.monotonic() - started < 20, "it waited for a worker instead of checking"
    assert redis.Redis.from_url(broker).llen("accounts.jobs") == 0, "the job message was sent anyway"


def test_an_unknown_job(env) -> None:
    assert_one_line_error(
        run_cli("jobs", "run", "nightly", "--date", "2026-03-01", env=env), contains="unknown job 'nightly'", code=2
    )


def test_kpis_with_an_impossible_date(env) -> None:
    result = run_cli("collections", "kpis", "--from", "2026-02-30", "--to", "2026-03-01", env=env)
    assert_one_line_error(result, contains="'--from'", code=2)


def test_an_unexpected_failure_is_one_line_with_the_debug_hint(monkeypatch) -> None:
    """Anything the group does not know still gets one line; BAITIAO_DEBUG=1 lets it through."""
    import baitiao.cli as cli

    def broken() -> None:
        raise RuntimeError("the disk caught fire\nsecond line")

    monkeypatch.setattr(cli.registry, "all_jobs", broken)
    result = CliRunner().invoke(main, ["jobs", "list"], env={"BAITIAO_DEBUG": ""})
    line = assert_one_line_error(result, code=1)
    assert "RuntimeError: the disk caught fire" in line and "BAITIAO_DEBUG=1" in line
    debug = CliRunner().invoke(main, ["jobs", "list"], env={"BAITIAO_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError)


def test_a_rules_file_that_is_not_yaml(env, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("overdue: [\n", encoding="utf-8")
    result = run_cli("plan", "offers", "acc-1", env={**env, "BAITIAO_RULES_FILE": str(rules)})
    assert_one_line_error(result, contains=f"the rules file {rules} is malformed", code=1)


def test_a_log_level_that_is_none(env) -> None:
    assert_one_line_error(
        run_cli("jobs", "list", env={**env, "BAITIAO_LOG_LEVEL": "loud"}), contains="BAITIAO_LOG_LEVEL=loud", code=1
    )
