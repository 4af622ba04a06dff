"""Real metadata databases (SQLite, PostgreSQL, MariaDB), a web app with users, and helpers to
read the audit trail.

``db_url`` works as in flow-core's own suite: a fresh database per backend per test session,
migrated by flow's Alembic migrations, its tables (flow's and the audit tables) emptied after
every test. Server URLs come from ``FLOW_TEST_POSTGRES_URL`` / ``FLOW_TEST_MARIADB_URL``, the
subset from ``FLOW_TEST_DATABASES``; with ``CI=true`` an unreachable server fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from flow.testing.databases import BACKENDS, TestDatabases
from flow.testing.fixtures import (  # noqa: F401 - fixtures are found by name
    dag_files,
    flow_env,
    flow_plugins,
    register_plugin,
    run_dag,
)

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    from flow_audit.store import metadata as audit_metadata

    databases = TestDatabases(tmp_path_factory, prefix="flow_audit_test",
                              extra_metadata=[audit_metadata])
    yield databases
    databases.drop_all()


@pytest.fixture
def flow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from flow.plugins import set_current
    from flow.store.session import dispose_engines
    from flow_audit import recorder, store

    home = tmp_path / "flow_home"
    (home / "dags").mkdir(parents=True)
    monkeypatch.setenv("FLOW_HOME", str(home))
    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("FLOW__CORE__DAGS_FOLDER", str(home / "dags"))
    for name in list(os.environ):
        if name.startswith(("FLOW_CONN_", "FLOW_VAR_", "FLOW__AUDIT__")) or name in {
                "FLOW__DATABASE__URL", "FLOW__CORE__DISABLED_PLUGINS"}:
            monkeypatch.delenv(name)
    recorder.reset()
    store._ready.clear()
    set_current(None)
    dispose_engines()
    yield home
    recorder.reset()
    store._ready.clear()
    set_current(None)
    dispose_engines()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, flow_home: Path, _databases: TestDatabases,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty metadata database on each backend, set as ``FLOW__DATABASE__URL``."""
    url = _databases.url(request.param)
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    try:
        yield url
    finally:
        from flow_audit import recorder

        recorder.reset()
        _databases.empty(url)


@pytest.fixture
def records(db_url: str) -> Callable[..., list[Any]]:
    """``records(**filters)``: this process's buffer written, then the chain's records."""
    def read(**filters: Any) -> list[Any]:
        from flow.store.session import make_engine
        from flow_audit import store
        from flow_audit.recorder import recorder

        assert recorder().flush(timeout=30), recorder().stats.as_dict()
        engine = make_engine(db_url)
        try:
            if not store.tables_exist(engine):
                return []
            return [r for r in store.walk(engine)
                    if all(getattr(r, name) == value for name, value in filters.items())]
        finally:
            engine.dispose()

    return read


# ---------------------------------------------------------------------------------- the web


@pytest.fixture
def app(db_url: str) -> Any:
    from flow.plugins import PluginManager
    from flow.web.app import create_app

    application = create_app(plugins=PluginManager().load())
    application.config["TESTING"] = True
    return application


@pytest.fixture
def users(app: Any) -> dict[str, str]:
    """role -> API token of a user with that role (username = role)."""
    from flow.store.session import session_scope
    from flow.web.users import create_token, create_user

    tokens = {}
    with session_scope() as session:
        for role in ("viewer", "op", "admin"):
            create_user(session, role, PASSWORD, role)
            tokens[role] = create_token(session, role, "tests")
    return tokens


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


@pytest.fixture
def browser_as(app: Any, users: dict[str, str]) -> Callable[[str], tuple[Any, str]]:
    """role -> a logged-in test client and its CSRF token (through the real login form)."""
    def make(role: str) -> tuple[Any, str]:
        client = app.test_client()
        response = login(client, role)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client, csrf_from(client.get("/dags").get_data(as_text=True))

    return make


DAG_ID = "audit_demo"
DAG_FILE = '''
from datetime import datetime

from flow import DAG
from flow.operators import EmptyOperator

with DAG("audit_demo", schedule=None, start_date=datetime(2024, 1, 1)):
    first = EmptyOperator(task_id="first")
    second = EmptyOperator(task_id="second")
    first >> second
'''


@pytest.fixture
def parsed_dag(db_url: str, flow_home: Path) -> str:
    """A small DAG parsed into the database by flow's DAG processor."""
    from flow.scheduling.processor import DagProcessor

    (flow_home / "dags" / "audit_demo.py").write_text(DAG_FILE)
    DagProcessor(flow_home / "dags").process(force=True)
    return DAG_ID
