"""Cases remember the report that opened them; an index for the filing's candidate query.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``cases.first_report_id`` (unique) and an index on (code, lat)."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("first_report_id", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_cases_first_report_id"), ["first_report_id"])
    op.create_index("ix_cases_code_lat", "cases", ["code", "lat"], unique=False)


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_cases_code_lat", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_constraint(op.f("uq_cases_first_report_id"), type_="unique")
        batch.drop_column("first_report_id")
