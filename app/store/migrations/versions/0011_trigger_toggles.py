"""triggers switched on or off at run time (trigger.Toggle), over what the flow's source says

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trigger_toggles',
        sa.Column('namespace', sa.String(length=255), nullable=False),
        sa.Column('flow_id', sa.String(length=255), nullable=False),
        sa.Column('trigger_id', sa.String(length=255), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('namespace', 'flow_id', 'trigger_id'),
    )


def downgrade() -> None:
    op.drop_table('trigger_toggles')
