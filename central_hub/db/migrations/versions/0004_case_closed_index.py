"""An index on ``cases.closed_at``: a period's statistics read the cases open at its start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``ix_cases_closed_at``."""
    op.create_index("ix_cases_closed_at", "cases", ["closed_at"], unique=False)


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_cases_closed_at", table_name="cases")
