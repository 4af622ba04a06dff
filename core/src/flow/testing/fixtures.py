"""Fixtures for ordinary plugin tests. Enable them in a ``conftest.py``::

    pytest_plugins = ["flow.testing.fixtures"]

* ``flow_env``: an isolated FLOW_HOME with a migrated SQLite database (``.home``,
  ``.dags_folder``, ``.database_url``, ``.engine``);
* ``flow_plugins``: a fresh plugin manager, active (``flow.plugins.current()``) for the test;
* ``register_plugin(obj, name=None)``: registers a plugin object, unregistered at teardown;
* ``dag_files``: ``dag_files.dag(source)`` writes a DAG file and returns its DAG;
* ``run_dag(dag, executor=None)``: runs the DAG to the end through an executor (the sequential
  one by default) and returns a :class:`~flow.testing.runner.DagRunOutcome` (``.states``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flow.testing.dags import DagFiles
from flow.testing.environment import (
    FlowEnvironment,
    PluginRegistrar,
    isolated_flow_home,
    isolated_plugins,
)


@pytest.fixture
def flow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowEnvironment]:
    with isolated_flow_home(tmp_path / "flow_home", monkeypatch) as environment:
        yield environment


@pytest.fixture
def flow_plugins(flow_env: FlowEnvironment) -> Iterator[Any]:
    with isolated_plugins() as manager:
        yield manager


@pytest.fixture
def register_plugin(flow_plugins: Any) -> Iterator[PluginRegistrar]:
    registrar = PluginRegistrar(flow_plugins)
    yield registrar
    registrar.unregister_all()


@pytest.fixture
def dag_files(flow_env: FlowEnvironment) -> DagFiles:
    return DagFiles(flow_env.dags_folder)


@pytest.fixture
def run_dag(flow_env: FlowEnvironment, flow_plugins: Any) -> Iterator[Callable[..., Any]]:
    from flow.testing.runner import run_dag as run

    started: list[Any] = []

    def run_one(dag: Any, executor: Any = None, timeout: float = 120.0) -> Any:
        if executor is None:
            executor = flow_plugins.executor("sequential").load()()
            started.append(executor)
        return run(dag, executor, engine=flow_env.engine, timeout=timeout)

    yield run_one
    for executor in started:
        executor.shutdown(wait=False)
