"""a task run's position includes the LoopUntil iteration it belongs to: each iteration has runs of its own

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('loop_round', sa.Integer(), nullable=False, server_default='0'))
        batch_op.drop_constraint('uq_task_run_position', type_='unique')
        batch_op.create_unique_constraint('uq_task_run_position',
                                          ['execution_id', 'parent_id', 'task_id', 'value', 'loop_round'])


def downgrade() -> None:
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_task_run_position', type_='unique')
        batch_op.create_unique_constraint('uq_task_run_position', ['execution_id', 'parent_id', 'task_id', 'value'])
        batch_op.drop_column('loop_round')
