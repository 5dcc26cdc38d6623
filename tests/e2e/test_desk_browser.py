"""The desk in a real browser (Debian's Chromium through Playwright) against a running
``baitiao api`` and the three real workers on PostgreSQL and Redis.

A collector logs in, opens today's worklist and a delinquent account, records a promise
to pay; collections receives it and the next dispatch suppresses the queued SMS
(``promise_pending``); a supervisor sees both in the KPIs; the collector cannot open
another collector's worklist or account, nor see an unmasked phone; the offer page shows
the numbers of the ``plan.offered`` event. A failing test leaves a screenshot of each
open page in ``<tmp>/artifacts``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from baitiao.processes import die_with_parent
from tests.e2e.conftest import System, start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import ROOT, run_cli

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "desk-password-1"
TODAY = "2026-03-24"  # DPD 14 of the bill due 2026-03-10: grade D early calls and SMS

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


def _job(system: System, name: str, day: str, at: str | None = None) -> dict[str, Any]:
    done = run_cli(["jobs", "run", name, "--date", day] + (["--at", at] if at else []), system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def desk(redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The system with three accounts past due (A and C the collector wang's, B zhao's),
    the day's collections plan made, the desk's users, and ``baitiao api`` serving."""
    base = tmp_path_factory.mktemp("desk")
    system = start_system(redis_db + 11, base)
    out = system.outside
    accounts = {"A": new_id("acc"), "B": new_id("acc"), "C": new_id("acc")}
    api: subprocess.Popen[bytes] | None = None
    try:
        for key, account in accounts.items():
            line = (
                credit_line(account, opened_on="2023-01-01", income="20000.00")
                if key == "C"
                else credit_line(account, opened_on="2026-01-15")
            )
            out.publish("credit.line.granted", line, account)
        for account in accounts.values():
            out.wait_for("credit.line.opened", lambda p, a=account: p["account_id"] == a)
            out.publish("purchase.requested", purchase(account, "3000.00", "2026-02-14T15:00:00+08:00"), account)
            out.wait_for("purchase.approved", lambda p, a=account: p["account_id"] == a)
        _job(system, "statements", "2026-03-01")
        _job(system, "daily-close", "2026-03-10")
        _job(system, "daily-close", TODAY)
        a = accounts["A"]
        out.wait_for("account.delinquency.updated", lambda p: p["account_id"] == a and p["business_date"] == TODAY)
        out.wait_for("risk.assessed", lambda p: p["account_id"] == a)
        out.pump(1.0)
        _job(system, "collections-daily", TODAY)
        out.wait_for("collection.task.created", lambda p: p["account_id"] == a)

        env = {**system.env, "BAITIAO_DESK_PASSWORD": PASSWORD}
        for name, role in (("wang", "collector"), ("zhao", "collector"), ("boss", "supervisor")):
            done = run_cli(["desk", "user", "add", name, "--role", role], env)
            assert done.returncode == 0, done.stderr
        for name, keys in (("wang", ("A", "C")), ("zhao", ("B",))):
            done = run_cli(["desk", "assign", name, *(accounts[k] for k in keys)], env)
            assert done.returncode == 0, done.stderr

        port = _free_port()
        log = open(base / "api.log", "ab")
        api = subprocess.Popen(
            [sys.executable, "-m", "baitiao.cli", "api", "--port", str(port)],
            env={**os.environ, **system.env, "BAITIAO_DESK_BUSINESS_DATE": TODAY},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/openapi.json", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or api.poll() is not None:
                    raise AssertionError((base / "api.log").read_text()) from None
                time.sleep(0.3)
        yield {"system": system, "url": url, "accounts": accounts, "artifacts": base / "artifacts"}
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=20)
        stop_system(system)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@contextmanager
def pages(browser: Any, artifacts: Path, name: str, **context: Any) -> Iterator[Any]:
    """A fresh browser context's page; on failure every page of it is kept as a PNG."""
    ctx = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "locale": "zh-CN", **context})
    page = ctx.new_page()
    try:
        yield page
    except BaseException:
        artifacts.mkdir(parents=True, exist_ok=True)
        for n, open_page in enumerate(ctx.pages):
            open_page.screenshot(path=str(artifacts / f"{name}-{n}.png"), full_page=True)
        raise
    finally:
        ctx.close()


def _log_in(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/worklist")


def _wait_promise(system: System, account: str, timeout: float = 30) -> None:
    engine = create_engine(system.databases.url("collections"))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.scalar(text("SELECT count(*) FROM promises WHERE account_id = :a"), {"a": account}):
                    return
            time.sleep(0.2)
        raise AssertionError(f"collections recorded no promise for {account}")
    finally:
        engine.dispose()


def test_a_promise_recorded_in_the_browser_suppresses_the_next_contact(desk: dict[str, Any], browser: Any) -> None:
    url, system, a = desk["url"], desk["system"], desk["accounts"]["A"]
    with pages(browser, desk["artifacts"], "collector") as page:
        _log_in(page, url, "wang")
        worklist = page.locator("[data-testid=worklist]")
        assert "今日工作" in page.content()
        row = worklist.locator("tr", has_text=a)
        assert "138****5678" in row.inner_text()
        assert desk["accounts"]["B"] not in worklist.inner_text()
        row.locator(f"a:text('{a}')").click()
        page.wait_for_url(f"{url}/accounts/{a}")
        assert page.locator("[data-testid=phone]").inner_text() == "138****5678"
        assert "13812345678" not in page.content()

        form = page.locator("[data-testid=outcome-form]")
        form.locator("select[name=outcome]").select_option("promise_to_pay")
        page.eval_on_selector("input[name=promised_date]", "e => e.removeAttribute('max')")
        form.locator("input[name=promised_date]").fill("2026-05-01")
        form.locator("button[type=submit]").click()
        assert "at most 30 days" in page.locator("[data-testid=error-promised_date]").inner_text()
        form = page.locator("[data-testid=outcome-form]")
        form.locator("select[name=outcome]").select_option("promise_to_pay")
        form.locator("input[name=promised_date]").fill("2026-03-27")
        form.locator("input[name=promised_amount]").fill("99999.00")
        form.locator("button[type=submit]").click()
        assert "more than" in page.locator("[data-testid=error-promised_amount]").inner_text()
        form = page.locator("[data-testid=outcome-form]")
        form.locator("select[name=outcome]").select_option("promise_to_pay")
        form.locator("input[name=promised_date]").fill("2026-03-27")
        form.locator("input[name=promised_amount]").fill("500.00")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("[data-testid=sent]")

        [event] = system.outside.wait_for("collection.outcome.recorded", lambda p: p["account_id"] == a)
        assert event["producer"] == "collectors-desk"
        assert (event["payload"]["promised_date"], event["payload"]["promised_amount"]) == ("2026-03-27", "500.00")
        _wait_promise(system, a)
        _job(system, "contact-dispatch", TODAY, at="10:00")
        system.outside.wait_for(
            "contact.suppressed", lambda p: p["account_id"] == a and p["reason"] == "promise_pending"
        )
        page.reload()
        assert "promise" in page.locator("[data-testid=timeline]").inner_text()

    with pages(browser, desk["artifacts"], "supervisor") as page:
        _log_in(page, url, "boss")
        page.goto(f"{url}/kpis")
        contacts = page.locator("[data-testid=contacts]").inner_text()
        assert "suppressed:promise_pending" in contacts and "attempted:promise_to_pay" in contacts
        assert page.locator("svg.chart").count() >= 2
        page.goto(f"{url}/audit")
        audit = page.locator("[data-testid=audit]").inner_text()
        assert "command:collection.outcome.recorded" in audit and "wang" in audit


def test_a_collector_sees_only_their_own_work_masked(desk: dict[str, Any], browser: Any) -> None:
    url, b = desk["url"], desk["accounts"]["B"]
    with pages(browser, desk["artifacts"], "boundaries", viewport={"width": 390, "height": 844}) as page:
        _log_in(page, url, "wang")
        assert page.locator("[data-testid=worklist]").is_visible()  # a phone's width
        page.goto(f"{url}/worklist?collector=zhao")
        assert page.locator("[data-testid=denied]").is_visible()
        response = page.goto(f"{url}/accounts/{b}")
        assert response is not None and response.status == 403
        api = page.request.get(f"{url}/api/accounts/{b}")
        assert api.status == 403
        own = page.request.get(f"{url}/api/accounts/{desk['accounts']['A']}").json()
        assert own["collections"]["customer"]["phone"] == "138****5678"


def test_the_offer_page_shows_the_offered_numbers(desk: dict[str, Any], browser: Any) -> None:
    url, system, c = desk["url"], desk["system"], desk["accounts"]["C"]
    with pages(browser, desk["artifacts"], "offers") as page:
        _log_in(page, url, "wang")
        page.goto(f"{url}/accounts/{c}/offers")
        page.click("text=请求方案 Request offers")
        page.wait_for_selector("[data-testid=sent]")
        offered = system.outside.wait_for("plan.offered", lambda p: p["account_id"] == c)[0]["payload"]
        page.reload()
        shown = page.locator("[data-testid=offer]")
        assert shown.count() == len(offered["offers"]) > 0
        for offer in offered["offers"]:
            card = page.locator(f"[data-offer-id='{offer['offer_id']}']")
            assert card.locator("[data-field=principal]").inner_text() == offer["principal"]
            assert card.locator("[data-field=total_fee]").inner_text() == offer["total_fee"]
            assert card.locator("[data-field=monthly_payment]").inner_text() == offer["monthly_payment"]
            assert card.locator("[data-field=apr]").get_attribute("data-value") == offer["apr"]
            assert card.locator("[data-field=apr]").inner_text() == f"{Decimal(offer['apr']) * 100:.2f}%"
            for line in offer["schedule"]:
                cells = card.locator(f"tr[data-period='{line['period']}'] td").all_inner_texts()
                assert cells == [str(line["period"]), line["due_date"], line["principal"], line["fee"], line["total"]]


def test_the_browser_is_debians_chromium(browser: Any) -> None:
    assert shutil.which("chromium") == CHROMIUM
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
    assert browser.version in done.stdout and date.fromisoformat(TODAY)
