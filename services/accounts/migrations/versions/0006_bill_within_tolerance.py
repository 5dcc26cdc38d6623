"""bills keep the date a repayment left their principal within the arrears tolerance

Revision ID: 0006_bill_within_tolerance
Revises: 0005_bill_report_notice
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006_bill_within_tolerance"
down_revision: Union[str, None] = "0005_bill_report_notice"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bills", sa.Column("within_tolerance_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("within_tolerance_on")
