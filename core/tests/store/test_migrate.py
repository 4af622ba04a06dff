"""ensure_current: an embedded SQLite database is migrated on first use; SQL for every dialect."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow.store.migrate import current_revision, ensure_current, head_revision, upgrade_sql
from flow.store.session import get_engine


def test_an_empty_sqlite_database_is_migrated_on_first_use(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'new.db'}")
    assert current_revision(engine) is None
    ensure_current(engine)
    assert current_revision(engine) == head_revision()
    ensure_current(engine)  # a current database is left alone


def test_sqlite_database_uses_wal(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = get_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql+psycopg://u@h/db",
                                 "mysql+pymysql://u@h/db"])
def test_upgrade_sql_creates_every_table_for_each_dialect(url: str) -> None:
    sql = upgrade_sql(url)
    for table in ("connection", "variable", "xcom", "task_instance", "event_log"):
        assert f"CREATE TABLE {table}" in sql
