"""command_answers: the first answer to each command, given again to its retries

Revision ID: 0004_command_answers
Revises: 0003
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004_command_answers"
down_revision: Union[str, None] = "0003"
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


def downgrade() -> None:
    op.drop_table("command_answers")
