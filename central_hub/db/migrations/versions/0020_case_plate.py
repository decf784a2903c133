"""A case's licence plate: two cars parked side by side are two cases (``cases.plate``).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (cases filed before keep none: they merge as they did)."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("plate", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("plate")
