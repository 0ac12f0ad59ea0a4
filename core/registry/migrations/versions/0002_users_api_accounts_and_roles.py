"""users: API accounts and roles

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:27:44.001427

The ``users`` table of core/registry/users.py (core/auth.py: roles, scrypt password hashes). Runs inside one
transaction with every other pending revision, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("town", sa.String(length=100), nullable=True),
        sa.Column("chief_id", sa.String(length=64), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("chief_id", name="uq_users_chief_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("users")
