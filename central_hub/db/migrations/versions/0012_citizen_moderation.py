"""Moderating citizens' reports: who hid or redacted a report and when, and
``contact_reads`` (who read a reporter's contact in full).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and create the table."""
    op.add_column("citizen_reports", sa.Column("hidden_at", sa.DateTime(timezone=True)))
    op.add_column("citizen_reports", sa.Column("hidden_by", sa.String(64)))
    op.add_column("citizen_reports", sa.Column("redacted_at", sa.DateTime(timezone=True)))
    op.add_column("citizen_reports", sa.Column("redacted_by", sa.String(64)))
    op.create_table(
        "contact_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.Integer, sa.ForeignKey("citizen_reports.id"), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_contact_reads_report_id", "contact_reads", ["report_id"])
    op.create_index("ix_contact_reads_at", "contact_reads", ["at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("contact_reads")
    with op.batch_alter_table("citizen_reports") as batch:
        for column in ("redacted_by", "redacted_at", "hidden_by", "hidden_at"):
            batch.drop_column(column)
