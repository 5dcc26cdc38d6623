"""cases keep the account's delinquency pause (paused_on, pause_reason, resumed_pause_on)

Revision ID: 0004_case_delinquency_pause
Revises: 0003_collections_job_runs
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004_case_delinquency_pause"
down_revision: Union[str, None] = "0003_collections_job_runs"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("paused_on", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("pause_reason", sa.String(24), nullable=True))
    op.add_column("cases", sa.Column("resumed_pause_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("resumed_pause_on")
        batch.drop_column("pause_reason")
        batch.drop_column("paused_on")
