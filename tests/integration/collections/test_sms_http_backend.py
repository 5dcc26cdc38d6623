"""The http SMS backend against a real HTTP server on 127.0.0.1.

The provider fails the first POST with a 500 and accepts the retry: exactly one SMS is
recorded as sent, and the provider saw the same idempotency key both times (so a real
provider would deliver it once). A 4xx is a permanent failure: no retry, no reminder.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from services.collections.models import ContactAttempt, SmsMessage
from services.collections.sms_gateway import GatewayReceipt, HttpGateway, OutgoingSms, gateway_from_settings
from shared.db import transaction
from shared.settings import Settings

from .conftest import World

pytestmark = pytest.mark.integration

DUE = date(2026, 7, 10)  # a month of its own: only these tests' SMS go to the server


class Provider:
    """A fake SMS provider: scripted status codes, and every request it received."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []


@pytest.fixture()
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"headers": dict(self.headers), "body": body})
            status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"status": status}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/sms"
    server.shutdown()
    server.server_close()


def _gateway(url: str) -> HttpGateway:
    settings = Settings(
        sms_backend="http",
        sms_http_url=url,
        sms_http_token="test-token",
        sms_http_timeout=2,
        sms_http_retries=3,
        sms_http_backoff=0.01,
    )
    gateway = gateway_from_settings(settings)
    assert isinstance(gateway, HttpGateway)
    return gateway


def test_a_500_then_success_sends_exactly_once_with_one_idempotency_key(world: World, provider) -> None:
    state, url = provider
    state.script = [500]
    account = "http-1"
    world.grant(account, name="李四", phone="13900001111")
    world.grade(account, "A")
    world.bill(account, "http-1-b1", DUE)
    world.daily(DUE - timedelta(days=1))
    summary = world.dispatch(DUE - timedelta(days=1), "09:00", _gateway(url))
    assert summary.get("sent") == 1
    keys = [r["headers"]["Idempotency-Key"] for r in state.requests]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert all(r["headers"]["Authorization"] == "Bearer test-token" for r in state.requests)
    body = state.requests[-1]["body"]
    assert body["phone"] == "13900001111" and "李*" in body["text"] and "李四" not in body["text"]
    with transaction(world.engine) as session:
        messages = session.scalars(select(SmsMessage).where(SmsMessage.account_id == account)).all()
    assert [(m.status, m.message_id, m.gateway_attempts) for m in messages] == [("sent", keys[0], 2)]
    reminders = world.events(account, "reminder.sent")
    assert [r["message_id"] for r in reminders] == [keys[0]]
    # the next minute's dispatch sends nothing more
    world.dispatch(DUE - timedelta(days=1), "09:01", _gateway(url))
    assert len(state.requests) == 2


def test_a_4xx_is_a_permanent_failure(world: World, provider) -> None:
    state, url = provider
    state.script = [400]
    account = "http-2"
    world.grant(account)
    world.grade(account, "A")
    world.bill(account, "http-2-b1", DUE)
    world.daily(DUE - timedelta(days=1))
    summary = world.dispatch(DUE - timedelta(days=1), "09:00", _gateway(url))
    assert summary.get("failed") == 1 and len(state.requests) == 1
    assert world.events(account, "reminder.sent") == []
    with transaction(world.engine) as session:
        contact = session.scalar(select(ContactAttempt).where(ContactAttempt.account_id == account))
    assert (contact.status, contact.reason) == ("failed", "gateway_rejected")


def test_provider_down_keeps_the_contact_for_a_later_run(world: World, provider) -> None:
    state, url = provider
    state.script = [503, 503, 503, 503]
    account = "http-3"
    world.grant(account)
    world.grade(account, "A")
    world.bill(account, "http-3-b1", DUE)
    world.daily(DUE - timedelta(days=1))
    summary = world.dispatch(DUE - timedelta(days=1), "09:00", _gateway(url))
    assert summary.get("retry") == 1
    summary = world.dispatch(DUE - timedelta(days=1), "09:01", _gateway(url))
    assert summary.get("sent") == 1
    keys = {r["headers"]["Idempotency-Key"] for r in state.requests}
    assert len(state.requests) == 5 and len(keys) == 1
    assert len(world.events(account, "reminder.sent")) == 1


class CrashingGateway:
    """Accepts the SMS, then the dispatcher 'dies' before recording it."""

    def __init__(self, inner: HttpGateway):
        self.inner = inner
        self.crashes = 1

    def send(self, sms: OutgoingSms) -> GatewayReceipt:
        receipt = self.inner.send(sms)
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("worker killed after the gateway accepted")
        return receipt


def test_a_dispatcher_dying_after_the_send_resends_with_the_same_key(world: World, provider) -> None:
    state, url = provider
    account = "http-4"
    world.grant(account)
    world.grade(account, "A")
    world.bill(account, "http-4-b1", DUE)
    day = DUE - timedelta(days=1)
    world.daily(day)
    gateway = CrashingGateway(_gateway(url))
    with pytest.raises(RuntimeError):
        world.dispatch(day, "09:00", gateway)
    assert world.dispatch(day, "09:01", gateway).get("in_flight") == 1  # maybe still running elsewhere
    assert world.dispatch(day, "09:03", gateway).get("sent") == 1  # its dispatcher is gone: resent
    keys = [r["headers"]["Idempotency-Key"] for r in state.requests]
    assert len(keys) == 2 and len(set(keys)) == 1
    assert len(world.events(account, "reminder.sent")) == 1
