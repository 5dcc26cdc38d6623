"""daily accruals indexed by business date and account (the close's lookup)

Revision ID: 0002
Revises: 0001
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_daily_accruals_day_account", "daily_accruals", ["business_date", "account_pk"])


def downgrade() -> None:
    op.drop_index("ix_daily_accruals_day_account", table_name="daily_accruals")
