"""The SMS gateway: one interface, two real backends chosen by settings (``sms_backend``).

- ``file`` (the embedded default): each SMS is one JSON line appended to
  ``sms_file_path``; a message_id already in the file is not written again.
- ``http``: a JSON POST to ``sms_http_url`` with ``Authorization: Bearer <token>`` and
  ``Idempotency-Key: <message_id>``. Timeouts, connection errors and 5xx are retried
  with exponential backoff; a 4xx is a permanent failure (the request itself is wrong,
  retrying cannot help); a 409 means the provider already has this key: accepted.
  Because the key is the message_id, a retry (here, or on the next dispatch after a
  crash) never makes the provider send twice.

What goes out: the message_id, the phone (the address: the provider must have it) and
the text, which carries the masked name only. Nothing here logs the phone or the text.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from shared.log import get_logger, mask_phone
from shared.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    message_id: str  # also the idempotency key
    phone: str
    text: str
    segments: int


@dataclass(frozen=True)
class GatewayReceipt:
    """``accepted``: the provider took it. Otherwise ``permanent`` says not to retry."""

    accepted: bool
    permanent: bool = False
    response: str = ""
    attempts: int = 1


class SmsGateway(Protocol):
    def send(self, sms: OutgoingSms) -> GatewayReceipt: ...


class FileGateway:
    """JSON lines in a file: the local stand-in for a provider (phone masked in the file)."""

    def __init__(self, path: Path):
        self.path = path

    def send(self, sms: OutgoingSms) -> GatewayReceipt:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._already_written(sms.message_id):
            return GatewayReceipt(accepted=True, response="duplicate: already in the outbox file")
        line = json.dumps(
            {"message_id": sms.message_id, "to": mask_phone(sms.phone), "text": sms.text, "segments": sms.segments},
            ensure_ascii=False,
        )
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return GatewayReceipt(accepted=True, response="written")

    def _already_written(self, message_id: str) -> bool:
        """Whether the file holds this message already. The ids read so far are kept per
        file and only the lines appended since are read: scanning the whole file on every
        send made a run of n messages cost O(n^2) (20,000 SMS read ~40 GB)."""
        if not self.path.exists():
            return False
        with _WRITTEN_LOCK:
            offset, ids = _WRITTEN.get(self.path, (0, set()))
            size = self.path.stat().st_size
            if size < offset:  # the file was replaced: read it again
                offset, ids = 0, set()
            if size > offset:
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(size - offset)
                complete = chunk.rfind(b"\n") + 1  # a line being written is read next time
                for line in chunk[:complete].splitlines():
                    try:
                        ids.add(json.loads(line)["message_id"])
                    except (ValueError, KeyError, TypeError):
                        continue
                offset += complete
            _WRITTEN[self.path] = (offset, ids)
            return message_id in ids


# message ids already in each outbox file, and how far the file was read (FileGateway)
_WRITTEN: dict[Path, tuple[int, set[str]]] = {}
_WRITTEN_LOCK = threading.Lock()


class HttpGateway:
    """A provider's HTTP API: JSON POST, bearer token, idempotency key, bounded retries."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
    ):
        self.url = url
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.client = client or httpx.Client(timeout=timeout)

    def send(self, sms: OutgoingSms) -> GatewayReceipt:
        body = {"message_id": sms.message_id, "phone": sms.phone, "text": sms.text, "segments": sms.segments}
        headers = {"Idempotency-Key": sms.message_id, "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last = ""
        for attempt in range(1, self.retries + 2):
            try:
                response = self.client.post(self.url, json=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused connections
                last = f"{type(exc).__name__}"
            else:
                receipt = self._judge(response, attempt)
                if receipt is not None:
                    return receipt
                last = f"HTTP {response.status_code}"
            log.warning(
                "sms_gateway_retry", message_id=sms.message_id, attempt=attempt, error=last, to=mask_phone(sms.phone)
            )
            if attempt <= self.retries:
                self.sleep(self.backoff * (2 ** (attempt - 1)))
        return GatewayReceipt(accepted=False, permanent=False, response=last, attempts=self.retries + 1)

    @staticmethod
    def _judge(response: httpx.Response, attempt: int) -> GatewayReceipt | None:
        """Accepted (2xx, or 409 already known), permanent failure (other 4xx), or None: retry."""
        text = response.text[:500]
        if response.is_success or response.status_code == 409:
            return GatewayReceipt(accepted=True, response=f"{response.status_code} {text}", attempts=attempt)
        if 400 <= response.status_code < 500:
            return GatewayReceipt(
                accepted=False, permanent=True, response=f"{response.status_code} {text}", attempts=attempt
            )
        return None


def gateway_from_settings(settings: Settings) -> SmsGateway:
    """The backend the settings choose (``sms_backend``)."""
    if settings.sms_backend == "http":
        if not settings.sms_http_url:
            raise ValueError("sms_backend is 'http' but BAITIAO_SMS_HTTP_URL is not set")
        return HttpGateway(
            settings.sms_http_url,
            settings.sms_http_token,
            timeout=settings.sms_http_timeout,
            retries=settings.sms_http_retries,
            backoff=settings.sms_http_backoff,
        )
    return FileGateway(settings.resolved_sms_file_path())
