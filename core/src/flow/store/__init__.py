"""The metadata database: models, engine and sessions, Alembic migrations."""
