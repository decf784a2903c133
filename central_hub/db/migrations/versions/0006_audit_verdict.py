"""``audits.verdict``: why an operator cancelled an AI report (a false alarm's kind).

Verdicts make the operators' verification decisions labels for retraining the detector
(``central_hub.domain.labels``). Older cancellations have none and count as ``other``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``verdict``."""
    op.add_column("audits", sa.Column("verdict", sa.String(24), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("audits") as batch:
        batch.drop_column("verdict")
