"""field_devices: SL 651 stations and HJ 212 analysers the gateway hears

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:50:00

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it
portable (SQLite ALTERs go through ``op.batch_alter_table``) and give constraints and indexes names.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'field_devices',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('protocol', sa.String(length=16), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('station_ids', sa.JSON(), nullable=False),
        sa.Column('unmapped', sa.JSON(), nullable=False),
        sa.Column('health', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('protocol', 'address', name='uq_field_devices_protocol_address'),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table('field_devices')
