"""Structured (JSON) logs that never carry personal data.

Names, phone numbers and the identity hash are masked by a structlog processor
whatever the caller passes, so a careless ``log.info(..., phone=...)`` cannot
leak: keys that name personal data are masked, and phone-like digit runs inside
any string value are masked too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")
_PERSONAL_KEYS = {"name", "customer_name", "phone", "mobile", "identity_hash", "id_number"}


def mask_phone(phone: str) -> str:
    """``13812345678`` → ``138****5678`` (keeps what a customer recognises)."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str) -> str:
    """``张三`` → ``张*``: the family name only."""
    name = name.strip()
    return (name[0] + "*" * max(len(name) - 1, 1)) if name else ""


def _mask_value(key: str, value: Any) -> Any:
    if key in ("identity_hash", "id_number"):
        return "***"
    if key in ("phone", "mobile") and isinstance(value, str):
        return mask_phone(value)
    if key in ("name", "customer_name") and isinstance(value, str):
        return mask_name(value)
    if isinstance(value, str):
        return _PHONE.sub(r"\1****\2", value)
    return value


def mask_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask every personal field before rendering."""
    return {
        key: _mask_value(key, value) if (key in _PERSONAL_KEYS or isinstance(value, str)) else value
        for key, value in event_dict.items()
    }


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    """JSON lines on stderr (or a console renderer for humans)."""
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
