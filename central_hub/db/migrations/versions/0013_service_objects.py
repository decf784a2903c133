"""The service-object registry (issue #14 item 1): objects, contacts, case links,
and the vehicle registry (item 3).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder until the tables are written."""


def downgrade() -> None:
    """Placeholder until the tables are written."""
