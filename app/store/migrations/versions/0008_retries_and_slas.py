"""an execution retried as a new one (retry behavior CREATE_NEW_EXECUTION) knows its chain: the first execution,
its try number, and when the first was created; an execution with a MAX_DURATION sla has the date it is checked at

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('retry_attempt', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('original_created', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sla_due', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_executions_original_id', ['original_id'], unique=False)
        batch_op.create_index('ix_executions_sla_due', ['sla_due'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_sla_due')
        batch_op.drop_index('ix_executions_original_id')
        batch_op.drop_column('sla_due')
        batch_op.drop_column('original_created')
        batch_op.drop_column('retry_attempt')
        batch_op.drop_column('original_id')
