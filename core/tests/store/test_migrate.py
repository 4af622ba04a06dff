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


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from flow.store.migrate import _alembic_head

    assert head_revision() == _alembic_head()


def test_checking_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    """Every scheduler, worker and web server checks the schema at start; Alembic (with Mako and
    Pygments) is 10 MB a process that only migrating needs."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'current.db'}"
    ensure_current(get_engine(url))
    check = ("import sys\n"
             "from flow.store.migrate import ensure_current, is_current\n"
             "from flow.store.session import get_engine\n"
             f"engine = get_engine({url!r})\n"
             "assert is_current(engine)\n"
             "ensure_current(engine)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
