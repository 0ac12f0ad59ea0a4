"""dead letters keep their payload's size and hash (the payload is a bounded prefix); users.token_generation

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 15:50:00.000000

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it
portable (SQLite ALTERs go through ``op.batch_alter_table``) and give constraints and indexes names.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before stay as they are (size and hash unknown: NULL); new ones are cut to a prefix on insert.
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_size', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('payload_sha256', sa.String(length=64), nullable=True))
    # Raised by a password change or "revoke": every token issued before is refused. Existing tokens carry none (0).
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('token_generation')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('payload_sha256')
        batch_op.drop_column('payload_size')
