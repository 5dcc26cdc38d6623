"""account views keep the delinquency pause; plans the days their monitoring was held

Revision ID: 0004_plan_monitoring_held
Revises: 0003_command_answers
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004_plan_monitoring_held"
down_revision: Union[str, None] = "0003_command_answers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("account_views", sa.Column("paused_on", sa.Date(), nullable=True))
    op.add_column("account_views", sa.Column("resumed_pause_on", sa.Date(), nullable=True))
    op.add_column("plans", sa.Column("days_held", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("days_held")
    with op.batch_alter_table("account_views") as batch:
        batch.drop_column("resumed_pause_on")
        batch.drop_column("paused_on")
