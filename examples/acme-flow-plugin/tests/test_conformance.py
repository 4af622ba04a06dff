"""flow-acme passes flow's conformance suites: the package checks and both operators' suites.

`flow plugins verify flow-acme` runs the same and prints the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import OperatorConformance, PluginPackageConformance


class TestAcmePackage(PluginPackageConformance):
    distribution = "flow-acme"
    conformance_version = "0.1"


@pytest.fixture
def acme_warehouse(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_ACME_WAREHOUSE_DEFAULT", json.dumps(
        {"conn_type": "acme_warehouse", "host": str(tmp_path / "warehouse")}))


class TestAcmeLoadOperator(OperatorConformance):
    distribution = "flow-acme"
    conformance_version = "0.1"
    claims = {"execution", "templating"}

    @pytest.fixture
    def operator_factory(self, acme_warehouse: None) -> Callable[[str], Any]:
        from flow_acme.operators import AcmeLoadOperator

        return lambda task_id: AcmeLoadOperator(task_id=task_id, table="orders",
                                                rows=[{"id": 1}])


class TestAcmeRowCountCheckOperator(OperatorConformance):
    distribution = "flow-acme"
    conformance_version = "0.1"
    claims = {"execution", "templating"}

    @pytest.fixture
    def operator_factory(self, acme_warehouse: None) -> Callable[[str], Any]:
        from flow_acme.operators import AcmeRowCountCheckOperator

        # min_rows=0: the suite runs it against an empty warehouse
        return lambda task_id: AcmeRowCountCheckOperator(task_id=task_id, table="orders",
                                                         min_rows=0)
