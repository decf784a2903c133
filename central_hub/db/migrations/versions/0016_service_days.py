"""``events.not_filed_reason``: why a stored event was not filed (a service day).

An event that falls in a convenience service day (``central_hub.domain.service_days``)
is stored like any other, so nothing is lost, but no case is filed; the reason (which
service day, what it suspends where, until when) is kept on the event, where operators
see it. Null for every other event.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``not_filed_reason``."""
    op.add_column("events", sa.Column("not_filed_reason", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("not_filed_reason")
