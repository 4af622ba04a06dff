"""Connection reads by tasks (in the forked process that runs the operator, which ends with
``os._exit``) and state changes when switched on: each recorded once, none lost, no secret in
them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CANARY = "canary-conn-pw-5b2e"
DAG_FILE = '''
from datetime import datetime

from flow import DAG, Connection
from flow.operators import PythonOperator


def read_connection():
    connection = Connection.get("warehouse")
    return connection.host


with DAG("audit_tasks", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=read_connection)
    second = PythonOperator(task_id="second", python_callable=read_connection)
    first >> second
'''


@pytest.fixture
def dag(db_url: str, flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from flow.scheduling.dagbag import load_dag_file

    monkeypatch.setenv("FLOW_CONN_WAREHOUSE", f"postgresql://loader:{CANARY}@wh.example/dw")
    path = flow_home / "dags" / "audit_tasks.py"
    path.write_text(DAG_FILE)
    [loaded] = load_dag_file(path, str(path.parent)).dags
    return loaded


def _run_with_local_executor(dag: Any) -> Any:
    from flow.builtin.executors.local import LocalExecutor
    from flow.store.session import get_engine
    from flow.testing.runner import run_dag

    executor = LocalExecutor(parallelism=2, workers=1)
    try:
        return run_dag(dag, executor, engine=get_engine(), timeout=120)
    finally:
        executor.shutdown(wait=True)


def test_connection_reads_are_recorded_and_state_changes_are_off_by_default(
        dag: Any, records: Callable[..., list[Any]]) -> None:
    outcome = _run_with_local_executor(dag)

    assert outcome.states == {"first": "success", "second": "success"}
    recorded = records()
    assert {r.kind for r in recorded} == {"connection_accessed"}
    assert sorted(r.actor for r in recorded) == ["audit_tasks/first", "audit_tasks/second"]
    for record in recorded:
        assert (record.target, record.source) == ("warehouse", "task")
        assert record.details["run_id"] == outcome.run_id
        assert record.details["try_number"] == 1
        assert CANARY not in str(record.as_dict())


def test_state_changes_of_local_executor_tries_are_recorded_once_when_switched_on(
        dag: Any, records: Callable[..., list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_audit import recorder

    monkeypatch.setenv("FLOW__AUDIT__RECORD_STATE_CHANGES", "true")
    recorder.reset()
    outcome = _run_with_local_executor(dag)

    recorded = records(kind="task_instance_state")
    changes = Counter((r.details["task_id"], r.details["previous"], r.details["current"])
                      for r in recorded)
    assert outcome.states == {"first": "success", "second": "success"}
    for task_id in ("first", "second"):
        assert changes[(task_id, "queued", "running")] == 1, changes
        assert changes[(task_id, "running", "success")] == 1, changes
    assert all(r.details["try_number"] == 1 for r in recorded)


def test_dag_run_and_task_state_changes_of_flow_dags_test(
        dag: Any, records: Callable[..., list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from flow.execution.dag_test import run_dag_test
    from flow_audit import recorder

    monkeypatch.setenv("FLOW__AUDIT__RECORD_STATE_CHANGES", "true")
    recorder.reset()
    run_dag_test(dag)

    runs = [(r.details["previous"], r.details["current"]) for r in records(kind="dag_run_state")]
    tasks = records(kind="task_instance_state")
    assert runs == [(None, "running"), ("running", "success")]
    assert Counter(r.details["current"] for r in tasks)["success"] == 2
    assert not [r for r in records() if CANARY in str(r.as_dict())]
