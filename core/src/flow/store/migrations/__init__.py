"""Alembic migrations of the metadata database (``flow db migrate``)."""
