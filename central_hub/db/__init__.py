"""Storage: SQLAlchemy 2 (async) tables, engines for SQLite (WAL) and PostgreSQL, migrations."""
