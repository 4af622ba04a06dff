"""The migrated schema is the schema the models describe, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from flow.store.migrate import head_revision, is_current
from flow.store.models import Base
from flow.store.session import get_engine


def test_migrations_produce_the_models_schema(db_url: str) -> None:
    engine = get_engine(db_url)
    assert is_current(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


def test_head_revision_is_single() -> None:
    assert head_revision()
