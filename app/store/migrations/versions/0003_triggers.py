"""triggers: the scheduler's state, what fired each execution, and whether its end was offered to flow triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('triggers',
    sa.Column('namespace', sa.String(length=255), nullable=False),
    sa.Column('flow_id', sa.String(length=255), nullable=False),
    sa.Column('trigger_id', sa.String(length=255), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('next_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_execution_id', sa.String(length=32), nullable=True),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'flow_id', 'trigger_id')
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('trigger_key', sa.String(length=255), nullable=True))
        # Existing executions count as checked: a first server must not fire flow triggers for old ends.
        batch_op.add_column(sa.Column('downstream_checked', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.create_index(batch_op.f('ix_executions_downstream_checked'), ['downstream_checked'], unique=False)
        batch_op.create_unique_constraint('uq_executions_trigger_key', ['namespace', 'flow_id', 'trigger_key'])


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_executions_trigger_key', type_='unique')
        batch_op.drop_index(batch_op.f('ix_executions_downstream_checked'))
        batch_op.drop_column('downstream_checked')
        batch_op.drop_column('trigger_key')
        batch_op.drop_column('trigger')
    op.drop_table('triggers')
