"""Model packages, rollout campaigns and shadow events: ``model_packages``, ``rollouts``,
``rollout_units``, ``events.shadow``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables; mark events raised by a shadow candidate."""
    op.add_column(
        "events", sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "model_packages",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("slot", sa.String(64), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("shadow", sa.JSON(), nullable=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("phase_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rollouts_phase", "rollouts", ["phase"])
    op.create_table(
        "rollout_units",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("device_id", sa.String(63), primary_key=True),
        sa.Column("canary", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cmd_id", sa.String(36), nullable=True),
        sa.Column("rollback_cmd_id", sa.String(36), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("previous_config", sa.JSON(), nullable=True),
        sa.Column("bytes_served", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("rollout_units")
    op.drop_index("ix_rollouts_phase", "rollouts")
    op.drop_table("rollouts")
    op.drop_table("model_packages")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("shadow")
