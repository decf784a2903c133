"""The filing token (SQLite only): one value that triggers change with every change to a
case that filing reads, so a hub worker's index of open cases knows when it still holds
(``central_hub.services.case_filing``; issue #18 item 3).

The table is kept out of the schema's metadata on purpose: it is derived state, not the
city's data, so backups neither write nor restore it (a restore's inserts fire the
triggers). PostgreSQL gets none: several workers file there at once, and a row every
filing changed would make them wait on each other.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

#: Columns whose change can change which case a report merges into.
_READ_BY_FILING = "code, lat, lon, place_key, stage, last_event_at, plate"
_BUMP = "BEGIN UPDATE filing_token SET token = random() WHERE id = 1; END"


def upgrade() -> None:
    """Create the table, its one row and the triggers (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE TABLE filing_token (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER NOT NULL)"
    )
    op.execute("INSERT INTO filing_token (id, token) VALUES (1, random())")
    op.execute(f"CREATE TRIGGER cases_filing_token_insert AFTER INSERT ON cases {_BUMP}")
    op.execute(f"CREATE TRIGGER cases_filing_token_delete AFTER DELETE ON cases {_BUMP}")
    op.execute(
        f"CREATE TRIGGER cases_filing_token_update AFTER UPDATE OF {_READ_BY_FILING}"
        f" ON cases {_BUMP}"
    )


def downgrade() -> None:
    """Drop them again."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS cases_filing_token_{trigger}")
    op.execute("DROP TABLE IF EXISTS filing_token")
