"""Reporter follow-up: which status change of a case was told to which citizen reporter
(``citizen_followups``; issue #15 item 5).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "citizen_followups",
        sa.Column("report_id", sa.Integer, sa.ForeignKey("citizen_reports.id"), primary_key=True),
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audits.id"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("address_key", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("audit_id", "address_key", name="uq_citizen_followups_audit_id"),
        sa.Index("ix_citizen_followups_address_key", "address_key"),
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("citizen_followups")
