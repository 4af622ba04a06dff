"""Shared fixtures: an isolated FLOW_HOME, and real metadata databases.

``db_url`` is parametrized over SQLite, PostgreSQL and MariaDB; each backend gets a fresh database
per test session (migrated by Alembic, as in production) and its tables are emptied after every
test. Server URLs come from ``FLOW_TEST_POSTGRES_URL`` / ``FLOW_TEST_MARIADB_URL``; the subset to
run from ``FLOW_TEST_DATABASES`` (default: all three). With ``CI=true`` a database server that
cannot be reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from flow.testing.databases import BACKENDS, TestDatabases


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    """A fresh, migrated database per backend for this test session (created lazily)."""
    databases = TestDatabases(tmp_path_factory)
    yield databases
    databases.drop_all()


@pytest.fixture
def flow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated FLOW_HOME with a Fernet key; the database URL is set by ``db_url``."""
    from flow.store.session import dispose_engines

    home = tmp_path / "flow_home"
    (home / "dags").mkdir(parents=True)
    monkeypatch.setenv("FLOW_HOME", str(home))
    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("FLOW__CORE__DAGS_FOLDER", str(home / "dags"))
    for name in list(os.environ):
        if name.startswith(("FLOW_CONN_", "FLOW_VAR_")) or name == "FLOW__DATABASE__URL":
            monkeypatch.delenv(name)
    dispose_engines()
    yield home
    dispose_engines()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, flow_home: Path, _databases: TestDatabases,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a migrated, empty metadata database on each backend; also set as
    ``FLOW__DATABASE__URL`` so flow code and child processes use it."""
    url = _databases.url(request.param)
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    try:
        yield url
    finally:
        _databases.empty(url)


@pytest.fixture
def sqlite_db(flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database in FLOW_HOME, for tests that need a DB but not every backend."""
    from flow.store.migrate import upgrade
    from flow.store.session import get_engine

    url = f"sqlite:///{flow_home / 'flow.db'}"
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    upgrade(get_engine(url))
    return url
