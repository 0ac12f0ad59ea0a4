"""patrols: when and how each patrol was recorded (live from the app, or imported by an admin with a reason)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 16:20:00

A patrol may start at most a grace period before it is recorded; older ones come in through an audited import.
Existing rows were all recorded live: recorded_at takes their start time, source 'app'.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patrols', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='app'))
        batch_op.add_column(sa.Column('recorded_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('import_reason', sa.Text(), nullable=True))
    op.execute("UPDATE patrols SET recorded_at = started_at WHERE recorded_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('patrols', schema=None) as batch_op:
        batch_op.drop_column('import_reason')
        batch_op.drop_column('recorded_by')
        batch_op.drop_column('source')
        batch_op.drop_column('recorded_at')
