"""which process sent a task run's message: embedded processes take up only what an exited one sent

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_by', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.drop_column('sent_by')
