"""``parking_checks``: the move-your-car loop's record of each 0505 case it handled
(issue #14 item 3): the car, the reminder, the recheck and its answer.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "parking_checks",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("plate", sa.String(16), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wait_s", sa.Float, nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cmd_id", sa.String(36), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_parking_checks_state_due", "parking_checks", ["state", "due_at"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("parking_checks")
