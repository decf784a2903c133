"""The vendor file (issue #14 item 4): persons, their cases and counsellings, lookups.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder until the tables are written."""


def downgrade() -> None:
    """Placeholder until the tables are written."""
