"""The suites are not vacuous: a component that breaks its contract fails them."""

from __future__ import annotations

from pathlib import Path

from .test_pytest_plugin import run_pytest


def test_an_executor_that_drops_workloads_fails_the_success_test(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, """
import pytest
from flow.execution.executor import BaseExecutor
from flow.testing import ExecutorConformance

class DroppingExecutor(BaseExecutor):
    name = "dropping"

    def submit(self, workload):
        pass  # accepts the workload and never runs it

class TestDropping(ExecutorConformance):
    run_timeout = 3

    @pytest.fixture
    def executor_factory(self):
        return lambda parallelism: DroppingExecutor(parallelism)
""", "-k", "test_success_is_reported_with_try_number_one")
    assert result.returncode == 1, result.stdout
    assert "DagRunTimeout: DAG exec_success did not finish in 3 s" in result.stdout


def test_an_executor_that_reports_success_without_running_fails(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, """
import pytest
from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent
from flow.testing import ExecutorConformance

class LyingExecutor(BaseExecutor):
    name = "lying"

    def submit(self, workload):
        self.report(TaskEvent(workload.key, "success", workload.try_number))

class TestLying(ExecutorConformance):
    @pytest.fixture
    def executor_factory(self):
        return lambda parallelism: LyingExecutor(parallelism)
""", "-k", "test_success_is_reported_with_try_number_one")
    assert result.returncode == 1, result.stdout
    assert "{'ok': 'failed'} == {'ok': 'success'}" in result.stdout


def test_an_xcom_backend_that_forgets_values_fails(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, """
import pytest
from flow.execution.xcom import DatabaseXComBackend
from flow.testing import XComBackendConformance

class ForgetfulBackend(DatabaseXComBackend):
    def get_one(self, **kwargs):
        return None

class TestForgetful(XComBackendConformance):
    @pytest.fixture
    def xcom_backend_factory(self):
        return ForgetfulBackend
""")
    assert result.returncode == 1, result.stdout
    assert "FAILED test_suite.py::TestForgetful::test_values_of_every_json_type_round_trip" \
        in result.stdout
