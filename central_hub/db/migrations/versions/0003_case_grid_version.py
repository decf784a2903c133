"""Cases keep the version of the grid they were filed under.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``cases.grid_version`` (null for cases filed before)."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("grid_version", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("grid_version")
