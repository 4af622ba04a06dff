"""flow.testing: fixtures and conformance suites for plugin authors.

Import what you need; names load lazily so that the ``pytest11`` plugin
(:mod:`flow.testing.pytest_plugin`), which lives in this package, stays cheap to import::

    from flow.testing import ExecutorConformance

    class TestMyExecutor(ExecutorConformance):
        claims = {"cancel", "parallelism"}

        @pytest.fixture
        def executor_factory(self):
            return lambda parallelism: MyExecutor(parallelism=parallelism)

Ordinary plugin tests get the fixtures with ``pytest_plugins = ["flow.testing.fixtures"]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CAPABILITIES": "flow.testing.capabilities",
    "ConformanceSuite": "flow.testing.suites.base",
    "conformance": "flow.testing.suites.base",
    "ExecutorConformance": "flow.testing.suites.executor",
    "OperatorConformance": "flow.testing.suites.operator",
    "XComBackendConformance": "flow.testing.suites.xcom",
    "SecretsBackendConformance": "flow.testing.suites.secrets",
    "TimetableConformance": "flow.testing.suites.timetable",
    "PluginPackageConformance": "flow.testing.suites.package",
    "DagFiles": "flow.testing.dags",
    "DagRunOutcome": "flow.testing.runner",
    "run_dag": "flow.testing.runner",
}

__all__ = [
    "CAPABILITIES",
    "ConformanceSuite",
    "DagFiles",
    "DagRunOutcome",
    "ExecutorConformance",
    "OperatorConformance",
    "PluginPackageConformance",
    "SecretsBackendConformance",
    "TimetableConformance",
    "XComBackendConformance",
    "conformance",
    "run_dag",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flow.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from flow.testing.capabilities import CAPABILITIES
    from flow.testing.dags import DagFiles
    from flow.testing.runner import DagRunOutcome, run_dag
    from flow.testing.suites.base import ConformanceSuite, conformance
    from flow.testing.suites.executor import ExecutorConformance
    from flow.testing.suites.operator import OperatorConformance
    from flow.testing.suites.package import PluginPackageConformance
    from flow.testing.suites.secrets import SecretsBackendConformance
    from flow.testing.suites.timetable import TimetableConformance
    from flow.testing.suites.xcom import XComBackendConformance
