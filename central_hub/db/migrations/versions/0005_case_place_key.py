"""Cases keyed by the square of their place: ``cases.place_key``, indexed with the code.

Filing read a code's open cases in latitude bands on ``(code, lat)``: every case in a
band, across the district's width, was read to test its longitude, so filing slowed as
open cases grew. It now looks up the few squares a report's merge radius reaches. The
keys of existing cases are computed here; the indexes on ``code`` (a prefix of the new
one) and ``(code, lat)`` go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from central_hub.services.case_filing import place_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 5_000


def upgrade() -> None:
    """Add and fill ``place_key``; swap the indexes."""
    op.add_column("cases", sa.Column("place_key", sa.BigInteger, nullable=True))
    conn = op.get_bind()
    cases = sa.table(
        "cases", sa.column("id"), sa.column("lat"), sa.column("lon"), sa.column("place_key")
    )
    rows = conn.execute(
        sa.select(cases.c.id, cases.c.lat, cases.c.lon).where(
            cases.c.lat.is_not(None), cases.c.lon.is_not(None)
        )
    ).all()
    update = (
        cases.update()
        .where(cases.c.id == sa.bindparam("b_id"))
        .values(place_key=sa.bindparam("b_key"))
    )
    for start in range(0, len(rows), _BATCH):
        conn.execute(
            update,
            [
                {"b_id": r.id, "b_key": place_key(r.lat, r.lon)}
                for r in rows[start : start + _BATCH]
            ],
        )
    op.create_index("ix_cases_code_place", "cases", ["code", "place_key"], unique=False)
    op.drop_index("ix_cases_code_lat", table_name="cases")
    op.drop_index("ix_cases_code", table_name="cases")


def downgrade() -> None:
    """Bring the older indexes back and drop the key."""
    op.create_index("ix_cases_code", "cases", ["code"], unique=False)
    op.create_index("ix_cases_code_lat", "cases", ["code", "lat"], unique=False)
    op.drop_index("ix_cases_code_place", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("place_key")
