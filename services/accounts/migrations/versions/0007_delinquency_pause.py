"""accounts keep their delinquency pause (pause_reason, paused_on, paused_until, pause_request_id)

Revision ID: 0007_delinquency_pause
Revises: 0006_bill_within_tolerance
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007_delinquency_pause"
down_revision: Union[str, None] = "0006_bill_within_tolerance"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("pause_reason", sa.String(24), nullable=True))
    op.add_column("accounts", sa.Column("paused_on", sa.Date(), nullable=True))
    op.add_column("accounts", sa.Column("paused_until", sa.Date(), nullable=True))
    op.add_column("accounts", sa.Column("pause_request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("pause_request_id")
        batch.drop_column("paused_until")
        batch.drop_column("paused_on")
        batch.drop_column("pause_reason")
