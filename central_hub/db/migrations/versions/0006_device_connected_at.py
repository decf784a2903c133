"""``devices.connected_at``: when the unit's current connection began (its birth).

A unit's last will is written when it connects, before its birth, and so is older than
the statuses the hub has stored when the broker finally publishes it: the hub refused it
as stale and a unit that lost power stayed online. The will is now judged against the
connection's start (``central_hub.services.devices.apply_status``). Units online at the
upgrade get it with their next birth.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``connected_at``."""
    op.add_column("devices", sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("connected_at")
