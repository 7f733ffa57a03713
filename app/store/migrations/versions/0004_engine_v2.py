"""engine v2: execution and task run versions (in-memory execution state), when each run's message was sent, which
process claimed it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('worker_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('row_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_task_runs_execution_version', ['execution_id', 'version'], unique=False)
        batch_op.create_index('ix_task_runs_state_sent_at', ['state', 'sent_at'], unique=False)
    # Runs waiting for a worker when this upgrade runs count as just sent: the reconciler checks them from now on.
    op.execute(sa.text("UPDATE task_runs SET sent_at = created WHERE state = 'CREATED'"))


def downgrade() -> None:
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_task_runs_state_sent_at')
        batch_op.drop_index('ix_task_runs_execution_version')
        batch_op.drop_column('row_version')
        batch_op.drop_column('version')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('worker_pid')
        batch_op.drop_column('sent_at')
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('version')
