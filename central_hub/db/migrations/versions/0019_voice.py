"""Scheduled announcements: ``voice_schedules`` and the slots sent (issue #16 item 2).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "voice_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("area", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "voice_schedule_slots",
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey("voice_schedules.id"),
            primary_key=True,
        ),
        sa.Column("slot_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=True),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("voice_schedule_slots")
    op.drop_table("voice_schedules")
