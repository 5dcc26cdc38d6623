"""Payloads an outside system sends, with sensible test defaults."""

from __future__ import annotations

import uuid
from typing import Any


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def credit_line(
    account_id: str,
    limit: str = "5000.00",
    identity: str | None = None,
    opened_on: str = "2025-06-01",
    income: str | None = None,
) -> dict[str, Any]:
    payload = {
        "account_id": account_id,
        "customer_id": f"cust-{account_id}",
        "identity_hash": identity or uuid.uuid4().hex,
        "credit_limit": limit,
        "name": "张三",
        "phone": "13812345678",
        "opened_on": opened_on,
    }
    if income is not None:
        payload["monthly_income"] = income
    return payload


def purchase(
    account_id: str, amount: str, requested_at: str = "2026-02-14T12:00:00+08:00", purchase_id: str | None = None
) -> dict[str, Any]:
    return {
        "purchase_id": purchase_id or new_id("pur"),
        "account_id": account_id,
        "amount": amount,
        "merchant": "jd-mall",
        "requested_at": requested_at,
    }


def repayment(
    account_id: str, amount: str, paid_at: str, payment_id: str | None = None, currency: str = "CNY"
) -> dict[str, Any]:
    return {
        "payment_id": payment_id or new_id("pay"),
        "account_id": account_id,
        "amount": amount,
        "currency": currency,
        "paid_at": paid_at,
        "channel": "app",
    }
