"""A Kubernetes API server per test (``kube_cluster``, from the ``kube`` test package: pods run
as local processes), PostgreSQL as the metadata database, and the settings that point flow's
executor and operator at both.

Pods get only their own environment (like real pods), so the pod template carries what
``flow tasks run`` needs: ``FLOW_HOME``, the database URL, the DAGs folder, the Fernet key and
any ``FLOW_CONN_*`` / ``FLOW_VAR_*`` the test set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The `kube` test package and k8s_testing live beside this file; pytest run from the repository
# root with this folder as an argument does not put it on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

import pytest
from kube.fixtures import kube_cluster  # noqa: F401 - a fixture, found by name

from flow.testing.dags import DagFiles
from flow.testing.databases import TestDatabases
from flow.testing.environment import (
    FlowEnvironment,
    isolated_flow_home,
    isolated_plugins,
)


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    databases = TestDatabases(tmp_path_factory, prefix="flow_k8s_test")
    yield databases
    databases.drop_all()


@pytest.fixture
def pg_url(_databases: TestDatabases) -> Iterator[str]:
    """A migrated, empty PostgreSQL metadata database (emptied again after the test)."""
    url = _databases.url("postgresql")
    yield url
    _databases.empty(url)


@pytest.fixture
def flow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
             ) -> Iterator[FlowEnvironment]:
    with isolated_flow_home(tmp_path / "flow_home", monkeypatch, pg_url) as environment:
        yield environment


@pytest.fixture
def flow_plugins(flow_env: FlowEnvironment) -> Iterator[Any]:
    with isolated_plugins() as manager:
        yield manager


@pytest.fixture
def dag_files(flow_env: FlowEnvironment) -> DagFiles:
    return DagFiles(flow_env.dags_folder)


@pytest.fixture
def make_settings(kube_cluster: Any,  # noqa: F811 - the fixture imported above
                  flow_env: FlowEnvironment) -> Callable[..., Any]:
    """``make_settings(**overrides)``: KubernetesSettings for the test cluster, its pod template
    built from the environment as it is at the call."""
    from k8s_testing import test_settings

    def make(**overrides: Any) -> Any:
        return test_settings(kube_cluster, **overrides)

    return make


@pytest.fixture
def k8s_environment(kube_cluster: Any,  # noqa: F811 - the fixture imported above
                    flow_env: FlowEnvironment, monkeypatch: pytest.MonkeyPatch
                    ) -> Callable[..., dict[str, str]]:
    """``k8s_environment(**overrides)``: sets ``FLOW__KUBERNETES__*`` for this process and its
    children (a ``flow scheduler``, local workers) and returns them."""
    from k8s_testing import settings_environment

    def apply(**overrides: Any) -> dict[str, str]:
        variables = settings_environment(kube_cluster, **overrides)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return variables

    return apply



# The longest tests (a pod per task of a whole DAG through `flow scheduler`) go first, so that
# with `pytest -n 2` the other worker runs everything else meanwhile instead of waiting at the end.
LONGEST_FIRST = ("test_fanout_200", "test_chain_50", "test_a_restarted_scheduler")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.name.startswith(LONGEST_FIRST))
