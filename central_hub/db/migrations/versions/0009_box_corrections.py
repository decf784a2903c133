"""Operators' box corrections on events' frames: ``box_corrections``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "box_corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_box_corrections_event_id", "box_corrections", ["event_id"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("box_corrections")
