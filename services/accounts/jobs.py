"""Accounts' scheduled jobs (EVENTS.md, Jobs): statements, the daily close, the credit report.

Each is a function of the database state and the business date, idempotent
for a date; the modules below hold them.
"""

from __future__ import annotations

from services.accounts.credit_report import credit_report
from services.accounts.daily_close import daily_close
from services.accounts.statements import statements

__all__ = ["statements", "daily_close", "credit_report"]
