"""Real metadata databases for test suites: flow-core's own and plugin packages'.

:class:`TestDatabases` creates, per test session, one fresh database on each backend a suite
runs against (SQLite in a temporary folder, PostgreSQL and MariaDB on their servers), migrated
by flow's Alembic migrations as in production; empties their tables after each test; and drops
the server databases at the end. A conftest wires it into a ``db_url`` fixture::

    from flow.testing.databases import BACKENDS, TestDatabases

    @pytest.fixture(scope="session")
    def _databases(tmp_path_factory):
        databases = TestDatabases(tmp_path_factory, prefix="myplugin_test")
        yield databases
        databases.drop_all()

    @pytest.fixture(params=BACKENDS)
    def db_url(request, _databases, monkeypatch):
        url = _databases.url(request.param)
        monkeypatch.setenv("FLOW__DATABASE__URL", url)
        yield url
        _databases.empty(url)

Server URLs come from ``FLOW_TEST_POSTGRES_URL`` / ``FLOW_TEST_MARIADB_URL``; the backends to
run from ``FLOW_TEST_DATABASES`` (default: all three). With ``CI=true`` a server that cannot be
reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, text
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


def server_unavailable(backend: str, error: Exception) -> None:
    """Fail (with ``CI=true``) or skip the test: the backend's server cannot be reached."""
    message = f"{backend} server at {SERVER_URLS[backend]} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure, start it)")
    pytest.skip(f"{message}; set CI=true to make this a failure")  # not in CI: see message


class TestDatabases:
    """One migrated database per backend for a test session (see the module docstring).

    ``extra_metadata``: tables a plugin keeps beside flow's; :meth:`empty` drops them, so each
    test starts without them."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, *, prefix: str = "flow_test",
                 extra_metadata: Iterable[MetaData] = ()) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.prefix = prefix
        self.extra_metadata = list(extra_metadata)
        self.created: dict[str, str] = {}

    def url(self, backend: str) -> str:
        """The backend's database for this session, created on first use."""
        if backend not in self.created:
            self.created[backend] = self._create(backend)
        return self.created[backend]

    def _create(self, backend: str) -> str:
        from flow.store.migrate import upgrade
        from flow.store.session import make_engine

        if backend == "sqlite":
            url = f"sqlite:///{self.tmp_path_factory.mktemp('sqlite') / 'flow.db'}"
        else:
            name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
            try:
                admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    quoted = f'"{name}"' if backend == "postgresql" else f"`{name}`"
                    connection.execute(text(f"CREATE DATABASE {quoted}"))
                admin.dispose()
            except Exception as err:  # the server is down or refuses us
                server_unavailable(backend, err)
            url = make_url(SERVER_URLS[backend]).set(database=name).render_as_string(
                hide_password=False)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def empty(self, url: str) -> None:
        """Empty flow's tables (and drop the extra ones) after a test."""
        from flow.store.models import Base
        from flow.store.session import make_engine

        engine = make_engine(url)
        try:
            for metadata in self.extra_metadata:
                metadata.drop_all(engine, checkfirst=True)
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                    connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                    return
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        """Drop the server databases this session created."""
        for backend, url in self.created.items():
            if backend == "sqlite":
                continue
            admin: Any = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                name = make_url(url).database
                if backend == "postgresql":
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            admin.dispose()
