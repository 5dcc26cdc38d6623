"""command_answers (the first answer to each command, for its retries) and applied_payments

Revision ID: 0003_command_answers
Revises: 0002
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_command_answers"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "command_answers",
        sa.Column("command", sa.String(64), primary_key=True),
        sa.Column("business_id", sa.String(64), primary_key=True),
        sa.Column("answer_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_table(
        "applied_payments",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("applied_payments")
    op.drop_table("command_answers")
