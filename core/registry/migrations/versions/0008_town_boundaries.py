"""towns: each town's boundary (GeoJSON) for areal rainfall

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 16:00:00

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it portable.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'towns',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('geometry', sa.JSON(), nullable=False),
        sa.Column('area_km2', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('towns')
