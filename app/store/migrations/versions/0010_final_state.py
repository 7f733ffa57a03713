"""an execution whose tasks have ended keeps the state it will end in while its afterExecution tasks run

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('final_state', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('final_state')
