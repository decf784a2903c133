"""The service-object registry (issue #14 item 1): objects, contacts, photos, audits,
case links, and the vehicle registry (item 3).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "service_objects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(400), nullable=False),
        sa.Column("industry", sa.String(8), nullable=True),
        sa.Column("subcategory", sa.String(8), nullable=True),
        sa.Column("legal_representative", sa.String(100), nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("grid_cell_id", sa.String(64), nullable=True),
        sa.Column("grid_version", sa.String(16), nullable=True),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("search_text", sa.String(610), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", "address", name="uq_service_objects_name_address"),
    )
    op.create_index("ix_service_objects_grid_cell_id", "service_objects", ["grid_cell_id"])
    op.create_index(
        "ix_service_objects_industry_subcategory", "service_objects", ["industry", "subcategory"]
    )
    op.create_index("ix_service_objects_kind_lat", "service_objects", ["kind", "lat"])
    op.create_table(
        "service_object_contacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(64), nullable=False, server_default=""),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        _when("updated_at"),
        sa.UniqueConstraint("object_id", "name", name="uq_service_object_contacts_object_name"),
    )
    op.create_index(
        "ix_service_object_contacts_object_id", "service_object_contacts", ["object_id"]
    )
    op.create_table(
        "service_object_photos",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _when("added_at"),
        sa.Column("added_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_service_object_photos_object_id", "service_object_photos", ["object_id"])
    op.create_table(
        "service_object_audits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
    )
    op.create_index("ix_service_object_audits_object_id", "service_object_audits", ["object_id"])
    op.create_table(
        "case_objects",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("service_objects.id"), primary_key=True),
        sa.Column("how", sa.String(8), nullable=False),
        _when("linked_at"),
        sa.Column("linked_by", sa.String(64), nullable=False),
        _when("unlinked_at", nullable=True),
        sa.Column("unlinked_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_case_objects_object_id", "case_objects", ["object_id"])
    op.create_table(
        "vehicles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plate", sa.String(16), nullable=False, unique=True),
        sa.Column("owner_name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        _when("created_at"),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    for table in (
        "vehicles",
        "case_objects",
        "service_object_audits",
        "service_object_photos",
        "service_object_contacts",
        "service_objects",
    ):
        op.drop_table(table)
