"""polling triggers: the evaluation in flight, where and when the last one ran, what it found, what it keeps

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('triggers') as batch:
        batch.add_column(sa.Column('evaluation_id', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('evaluation_sent', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('evaluated_on', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('last_evaluated', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_result', sa.Text(), nullable=True))
        batch.add_column(sa.Column('state', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('triggers') as batch:
        for column in ('state', 'last_result', 'last_evaluated', 'evaluated_on', 'evaluation_sent', 'evaluation_id'):
            batch.drop_column(column)
