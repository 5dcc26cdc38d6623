"""bills keep the pre-report notice (report_notice_on, report_notice_channel)

Revision ID: 0005_bill_report_notice
Revises: 0004_command_answers
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005_bill_report_notice"
down_revision: Union[str, None] = "0004_command_answers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bills", sa.Column("report_notice_on", sa.Date(), nullable=True))
    op.add_column("bills", sa.Column("report_notice_channel", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("report_notice_channel")
        batch.drop_column("report_notice_on")
