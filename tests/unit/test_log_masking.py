"""Personal data never reaches a log line, whatever the caller passes."""

from __future__ import annotations

from shared.log import mask_name, mask_personal_data, mask_phone


def test_personal_fields_are_masked() -> None:
    event = mask_personal_data(
        None,
        "info",
        {
            "event": "x",
            "name": "张三丰",
            "phone": "13812345678",
            "identity_hash": "secret",
            "note": "call 13987654321 now",
        },
    )
    assert event["name"] == "张**" and event["phone"] == "138****5678"
    assert event["identity_hash"] == "***"
    assert event["note"] == "call 139****4321 now"


def test_masks() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("138-1234-5678") == "138****5678"
    assert mask_name("李") == "李*"
