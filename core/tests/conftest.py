"""Shared fixtures: an isolated FLOW_HOME, and real metadata databases.

``db_url`` is parametrized over SQLite, PostgreSQL and MariaDB; each backend gets a fresh database
per test session (migrated by Alembic, as in production) and its tables are emptied after every
test. Server URLs come from ``FLOW_TEST_POSTGRES_URL`` / ``FLOW_TEST_MARIADB_URL``; the subset to
run from ``FLOW_TEST_DATABASES`` (default: all three). With ``CI=true`` a database server that
cannot be reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URLS = {
    "postgresql": os.environ.get("FLOW_TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("FLOW_TEST_MARIADB_URL",
                              "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = [b for b in os.environ.get("FLOW_TEST_DATABASES", "sqlite,postgresql,mariadb")
            .split(",") if b]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _server_unavailable(backend: str, error: Exception) -> None:
    message = f"{backend} server at {SERVER_URLS[backend]} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure, start it)")
    pytest.skip(f"{message}; set CI=true to make this a failure")  # not in CI: see message


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """backend -> URL of a fresh, migrated database for this test session (created lazily)."""
    created: dict[str, str] = {}
    yield created
    for backend, url in created.items():
        if backend == "sqlite":
            continue
        admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = make_url(url).database
            if backend == "postgresql":
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _create_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    from flow.store.migrate import upgrade
    from flow.store.session import make_engine

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'flow.db'}"
    else:
        name = f"flow_test_{uuid.uuid4().hex[:10]}"
        try:
            admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                quoted = f'"{name}"' if backend == "postgresql" else f"`{name}`"
                connection.execute(text(f"CREATE DATABASE {quoted}"))
            admin.dispose()
        except Exception as err:  # the server is down or refuses us
            _server_unavailable(backend, err)
        url = make_url(SERVER_URLS[backend]).set(database=name).render_as_string(
            hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _empty_tables(url: str) -> None:
    from flow.store.models import Base
    from flow.store.session import get_engine

    engine = get_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


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
def db_url(request: pytest.FixtureRequest, flow_home: Path, _databases: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a migrated, empty metadata database on each backend; also set as
    ``FLOW__DATABASE__URL`` so flow code and child processes use it."""
    backend = request.param
    if backend not in _databases:
        _databases[backend] = _create_database(backend, tmp_path_factory)
    url = _databases[backend]
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    try:
        yield url
    finally:
        _empty_tables(url)


@pytest.fixture
def sqlite_db(flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database in FLOW_HOME, for tests that need a DB but not every backend."""
    from flow.store.migrate import upgrade
    from flow.store.session import get_engine

    url = f"sqlite:///{flow_home / 'flow.db'}"
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    upgrade(get_engine(url))
    return url
