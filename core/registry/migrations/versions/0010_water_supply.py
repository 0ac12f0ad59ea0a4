"""intake users and meters, groundwater wells, water sources, village supplies

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 17:00:00

Runs inside one transaction with every other pending revision, on SQLite and PostgreSQL: keep it portable.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'intake_users',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('town', sa.String(length=100), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('licence_no', sa.String(length=100), nullable=False),
        sa.Column('permitted_m3_per_year', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_intake_users_town', 'intake_users', ['town'], unique=False)
    op.create_table(
        'intake_meters',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rollover_m3', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['intake_users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_intake_meters_user_id', 'intake_meters', ['user_id'], unique=False)
    op.create_index('ix_intake_meters_station_id', 'intake_meters', ['station_id'], unique=False)
    op.create_table(
        'groundwater_wells',
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('town', sa.String(length=100), nullable=False),
        sa.Column('ground_elevation_m', sa.Float(), nullable=False),
        sa.Column('aquifer', sa.String(length=100), nullable=False),
        sa.Column('well_depth_m', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('station_id'),
    )
    op.create_table(
        'water_sources',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('reservoir_station_id', sa.String(length=64), nullable=True),
        sa.Column('village_station_ids', sa.JSON(), nullable=False),
        sa.Column('plant_ids', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'village_supplies',
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('supply_type', sa.String(length=24), nullable=False),
        sa.Column('population', sa.Integer(), nullable=False),
        sa.Column('design_m3_per_day', sa.Float(), nullable=False),
        sa.Column('plant_id', sa.String(length=64), nullable=True),
        sa.Column('disinfectant', sa.String(length=24), nullable=False),
        sa.Column('service_head_m', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('station_id'),
    )
    op.create_index('ix_village_supplies_plant_id', 'village_supplies', ['plant_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_village_supplies_plant_id', table_name='village_supplies')
    op.drop_table('village_supplies')
    op.drop_table('water_sources')
    op.drop_table('groundwater_wells')
    op.drop_index('ix_intake_meters_station_id', table_name='intake_meters')
    op.drop_index('ix_intake_meters_user_id', table_name='intake_meters')
    op.drop_table('intake_meters')
    op.drop_index('ix_intake_users_town', table_name='intake_users')
    op.drop_table('intake_users')
