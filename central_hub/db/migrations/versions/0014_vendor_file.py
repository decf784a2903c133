"""The vendor file (issue #14 item 4): persons, their cases and counsellings, lookups.

``vendor_persons`` (the identity number AES-GCM encrypted with its HMAC beside it, and
the id of the key that wrote them), ``vendor_person_cases`` (a 0501 case links to at
most one person: the case id is the key), ``vendor_counsellings`` and
``vendor_file_lookups`` (who looked what up, when, why, and which people were shown).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the vendor file's four tables."""
    op.create_table(
        "vendor_persons",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("photo_sha256", sa.String(64), nullable=True),
        sa.Column("id_cipher", sa.LargeBinary, nullable=True),
        sa.Column("id_hmac", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("id_hmac", name="uq_vendor_persons_id_hmac"),
    )
    op.create_index("ix_vendor_persons_name", "vendor_persons", ["name"])
    op.create_table(
        "vendor_person_cases",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("vendor_persons.id"), nullable=False),
        sa.Column("linked_by", sa.String(64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vendor_person_cases_person_id", "vendor_person_cases", ["person_id"])
    op.create_table(
        "vendor_counsellings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("vendor_persons.id"), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("officer", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vendor_counsellings_person_id", "vendor_counsellings", ["person_id"])
    op.create_table(
        "vendor_file_lookups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("query", sa.String(64), nullable=False, server_default=""),
        sa.Column("shown", sa.JSON(), nullable=False),
    )
    op.create_index("ix_vendor_file_lookups_at", "vendor_file_lookups", ["at"])


def downgrade() -> None:
    """Drop them again."""
    for table in (
        "vendor_file_lookups",
        "vendor_counsellings",
        "vendor_person_cases",
        "vendor_persons",
    ):
        op.drop_table(table)
