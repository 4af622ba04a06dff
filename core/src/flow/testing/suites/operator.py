"""The operator suite: an operator behaves like the builtins in a DAG, a run and serialization.

The author overrides ``operator_factory``: a callable ``(task_id: str) -> BaseOperator`` that
builds one configured instance (the suite calls it inside a ``DAG`` block). Claim ``execution``
when that instance can run in the test environment (it needs no service the test lacks).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from flow.testing.environment import FlowEnvironment
from flow.testing.suites.base import ConformanceSuite, abstract_fixture, conformance


class OperatorConformance(ConformanceSuite):
    """Subclass and override ``operator_factory``."""

    flow_suite = "operator"

    operator_factory = abstract_fixture(
        "operator_factory", "return a callable (task_id: str) -> a configured operator")

    @pytest.fixture
    def dag_with_operator(self, flow_plugins: Any,
                          operator_factory: Callable[[str], Any]) -> Any:
        # flow_plugins (and so the isolated environment) first: a factory may set FLOW_CONN_*
        # variables, which the environment's setup clears.
        from flow.authoring.dag import DAG

        with DAG("operator_suite", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            operator_factory("under_test")
        return dag

    @pytest.fixture
    def operator(self, dag_with_operator: Any) -> Any:
        return dag_with_operator.get_task("under_test")

    @conformance(since="0.1")
    def test_it_is_a_base_operator_in_the_dag(self, operator: Any,
                                              dag_with_operator: Any) -> None:
        from flow.authoring.baseoperator import BaseOperator

        assert isinstance(operator, BaseOperator)
        assert operator.dag is dag_with_operator
        assert operator.task_type == type(operator).__name__

    @conformance(since="0.1")
    def test_template_fields_name_attributes_it_has(self, operator: Any) -> None:
        missing = [name for name in operator.template_fields if not hasattr(operator, name)]
        assert not missing, f"template_fields name missing attributes: {missing}"

    @conformance("templating", since="0.1")
    def test_it_has_a_template_field(self, operator: Any) -> None:
        assert list(operator.template_fields), "claims templating but has no template field"

    @conformance(since="0.1")
    def test_prepare_for_execution_returns_a_copy(self, operator: Any) -> None:
        copy = operator.prepare_for_execution()
        assert copy is not operator
        assert copy.task_id == operator.task_id
        assert type(copy) is type(operator)

    @conformance(since="0.1")
    def test_it_serializes_with_its_dag(self, dag_with_operator: Any) -> None:
        import json

        from flow.scheduling.serialization import SerializedDag, serialize_dag

        data = json.loads(json.dumps(serialize_dag(dag_with_operator)))
        task = SerializedDag.from_dict(data).task_dict["under_test"]
        assert task.task_type == dag_with_operator.get_task("under_test").task_type

    @conformance(since="0.1")
    def test_on_kill_can_be_called_before_execute(self, operator: Any) -> None:
        operator.prepare_for_execution().on_kill()

    @conformance("execution", since="0.1")
    def test_it_runs_to_success_in_a_test_run(self, dag_with_operator: Any,
                                              flow_env: FlowEnvironment,
                                              flow_plugins: Any) -> None:
        from flow.execution.dag_test import run_dag_test

        result = run_dag_test(dag_with_operator, engine=flow_env.engine, plugins=flow_plugins)
        assert result.task_states() == {"under_test": "success"}, result
