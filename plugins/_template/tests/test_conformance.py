"""The plugin passes flow's conformance suites: the package checks and its operator's suite.

`flow plugins verify flow-template` runs the same checks and prints the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import OperatorConformance, PluginPackageConformance


class TestPackage(PluginPackageConformance):
    distribution = "flow-template"
    conformance_version = "0.1"


class TestGreetOperator(OperatorConformance):
    distribution = "flow-template"
    conformance_version = "0.1"
    claims = {"execution", "templating"}

    @pytest.fixture
    def operator_factory(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
        from flow_template.operators import GreetOperator

        monkeypatch.setenv("FLOW_CONN_TEMPLATE_DEFAULT",
                           '{"conn_type": "template_greeting", "host": "greetings.example.com"}')
        return lambda task_id: GreetOperator(task_id=task_id, name="conformance")
