"""The file SMS backend: JSON lines, the masked phone, a message_id written once."""

from __future__ import annotations

import json
from pathlib import Path

from services.collections.sms_gateway import FileGateway, OutgoingSms, gateway_from_settings
from shared.settings import Settings


def test_file_backend_writes_each_message_once(tmp_path: Path) -> None:
    gateway = FileGateway(tmp_path / "out" / "sms.jsonl")
    sms = OutgoingSms("m-1", "13812345678", "【白条】张*您好", 1)
    assert gateway.send(sms).accepted
    assert gateway.send(sms).accepted
    lines = (tmp_path / "out" / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"message_id": "m-1", "to": "138****5678", "text": "【白条】张*您好", "segments": 1}


def test_file_is_the_default_backend(tmp_path: Path) -> None:
    gateway = gateway_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(gateway, FileGateway) and gateway.path == tmp_path / "sms-outbox.jsonl"
