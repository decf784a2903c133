"""Notices (issue #14 item 2): notices, deliveries, opt-outs.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder until the tables are written."""


def downgrade() -> None:
    """Placeholder until the tables are written."""
