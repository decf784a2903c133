"""``live_views``: who watched which camera live, from when to when (issue #16 item 1).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "live_views",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("frames", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_live_views_device", "live_views", ["device_id", "started_at"])
    op.create_index("ix_live_views_case", "live_views", ["case_id"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("live_views")
