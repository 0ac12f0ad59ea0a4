"""drop river_chiefs.user_id: the login link is users.chief_id

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 02:28:52.435746

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it
portable (SQLite ALTERs go through ``op.batch_alter_table``) and give constraints and indexes names.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Two links between a chief and a login (this column and users.chief_id) could disagree; the API authorizes by
    # users.chief_id, so this one goes. Its unique constraint goes with it (batch mode rebuilds the table on SQLite).
    with op.batch_alter_table('river_chiefs', schema=None) as batch_op:
        batch_op.drop_column('user_id')


def downgrade() -> None:
    # The column comes back empty: the links were users.chief_id's all along.
    with op.batch_alter_table('river_chiefs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('river_chiefs_user_id_key', ['user_id'])
