"""Every example DAG passes `flow dags test --all`, run through the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flow import serialization
from flow.store.models import TaskInstance, XComModel
from flow.store.session import get_engine, session_scope

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FLOW = str(Path(sys.executable).parent / "flow")


@pytest.fixture
def example_run(db_url: str, flow_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
           "FLOW_CONN_EXAMPLE_API": "http://demo:s3cr3t-demo@127.0.0.1:8080/api"}
    return subprocess.run([FLOW, "dags", "test", "--all"], capture_output=True, text=True,
                          env=env, timeout=300)


def _states(db_url: str, dag_id: str) -> dict[tuple[str, int], str | None]:
    with session_scope(get_engine(db_url)) as session:
        rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id))
        return {(row.task_id, row.map_index): row.state for row in rows}


def _xcom(db_url: str, dag_id: str, task_id: str, key: str = "return_value",
          map_index: int = -1) -> Any:
    with session_scope(get_engine(db_url)) as session:
        text = session.scalar(select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.task_id == task_id, XComModel.key == key,
            XComModel.map_index == map_index))
    return serialization.loads(text) if text is not None else None


def test_every_example_dag_run_succeeds(example_run: subprocess.CompletedProcess[str],
                                        db_url: str) -> None:
    assert example_run.returncode == 0, example_run.stdout + example_run.stderr
    summary = example_run.stdout.split("== summary", 1)[1]
    examples = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert len(examples) >= 9
    for dag_id in ("example_branching", "example_connections", "example_mapping",
                   "example_params", "example_taskflow", "example_templating",
                   "example_trigger_rules", "example_xcom", "hello_dag"):
        assert f"{dag_id} " in summary and dag_id in examples

    assert _states(db_url, "example_branching") == {
        ("choose", -1): "success", ("weekday_report", -1): "success",
        ("weekend_report", -1): "skipped", ("join", -1): "success",
        ("has_data", -1): "success", ("publish", -1): "skipped"}

    mapped = _states(db_url, "example_mapping")
    assert sorted(i for (t, i) in mapped if t == "double") == [0, 1, 2]
    assert sorted(i for (t, i) in mapped if t == "shout") == [0, 1]
    assert set(mapped.values()) == {"success"}
    assert _xcom(db_url, "example_mapping", "total") == 12

    assert _xcom(db_url, "example_taskflow", "transform", "total") == 1236.7
    assert _xcom(db_url, "example_taskflow", "load") == "3 orders worth 1236.70"
    assert _xcom(db_url, "example_xcom", "pull") == 48
    assert _xcom(db_url, "example_xcom", "echo_pulled") == "total=48"
    assert _xcom(db_url, "example_params", "make_rows") == ["row-0", "row-1", "row-2"]
    trigger = _states(db_url, "example_trigger_rules")
    assert (trigger[("flaky", -1)], trigger[("on_success_path", -1)],
            trigger[("alert", -1)], trigger[("report", -1)]) == (
        "failed", "upstream_failed", "success", "success")


def test_the_connection_example_logs_its_password_masked(
        example_run: subprocess.CompletedProcess[str], flow_home: Path) -> None:
    assert example_run.returncode == 0, example_run.stderr
    [log] = (flow_home / "logs" / "dag_id=example_connections").glob(
        "run_id=*/task_id=read_connection/attempt=1.log")
    text = log.read_text()
    assert "with password ***" in text
    assert "http://demo:***@127.0.0.1:8080/api" in text
    assert "s3cr3t-demo" not in text
