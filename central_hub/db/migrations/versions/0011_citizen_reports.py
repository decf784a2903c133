"""Citizen reports through Open311: ``open311_keys`` and ``citizen_reports``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "open311_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "citizen_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(36), nullable=False, unique=True),
        sa.Column("api_key_id", sa.Integer, sa.ForeignKey("open311_keys.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("location_source", sa.String(8), nullable=False),
        sa.Column("address", sa.String(400), nullable=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("media_url", sa.String(2000), nullable=True),
        sa.Column("photo_sha256", sa.String(64), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("device_id", sa.String(128), nullable=True),
        sa.Column("account_id", sa.String(128), nullable=True),
        sa.Column("contact_cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_citizen_reports_idempotency"),
    )
    op.create_index("ix_citizen_reports_case_id", "citizen_reports", ["case_id"])
    op.create_index("ix_citizen_reports_created_at", "citizen_reports", ["created_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("citizen_reports")
    op.drop_table("open311_keys")
