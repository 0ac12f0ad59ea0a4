"""stations: the reservoir's flood-control high level (防洪高水位), the orange step of its warning ladder

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:00:00

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it portable.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.add_column(sa.Column('flood_control_high_level_m', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.drop_column('flood_control_high_level_m')
