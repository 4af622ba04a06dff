"""The builtin operators pass the operator suite, strictly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import OperatorConformance


class TestBashOperator(OperatorConformance):
    claims = {"execution", "templating"}
    distribution = "flow-core"

    @pytest.fixture
    def operator_factory(self) -> Callable[[str], Any]:
        from flow.operators import BashOperator

        return lambda task_id: BashOperator(task_id=task_id, bash_command="echo {{ ds }}")


class TestPythonOperator(OperatorConformance):
    claims = {"execution", "templating"}
    distribution = "flow-core"

    @pytest.fixture
    def operator_factory(self) -> Callable[[str], Any]:
        from flow.operators import PythonOperator

        return lambda task_id: PythonOperator(task_id=task_id, python_callable=sum,
                                              op_args=[[1, 2, 3]])


class TestEmptyOperator(OperatorConformance):
    claims = {"execution"}
    distribution = "flow-core"

    @pytest.fixture
    def operator_factory(self) -> Callable[[str], Any]:
        from flow.operators import EmptyOperator

        return lambda task_id: EmptyOperator(task_id=task_id)
