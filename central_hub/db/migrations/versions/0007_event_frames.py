"""Clean frames for retraining: ``events.frame_sha256`` and the ``frame_reads`` audit.

A unit sends the violation's frame clean (no boxes, no blur) beside the public snapshot;
the hub keeps it in its own store, for admins only, and records every read.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column and the table."""
    op.add_column("events", sa.Column("frame_sha256", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("frame_faces", sa.JSON(), nullable=True))
    op.create_table(
        "frame_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_frame_reads_sha256", "frame_reads", ["sha256"])
    op.create_index("ix_frame_reads_at", "frame_reads", ["at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("frame_reads")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("frame_faces")
        batch.drop_column("frame_sha256")
