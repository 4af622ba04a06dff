"""`flow tasks run` supervises its try; `flow tasks states-for-run` shows a run's states."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from click.testing import CliRunner
from runner_helpers import Store, queue_task
from sqlalchemy import Engine

from flow.cli.main import cli
from flow.execution.workload import TaskWorkload
from flow.scheduling.dagbag import load_dag_file

DAG_FILE = textwrap.dedent("""
    import os
    from datetime import datetime
    from flow import DAG
    from flow.operators import PythonOperator

    def leave():
        print("leaving now")
        os._exit(9)

    with DAG("crashy", schedule=None, start_date=datetime(2024, 1, 1)):
        PythonOperator(task_id="crash", python_callable=leave)
        PythonOperator(task_id="fine", python_callable=lambda: 1)
""")


def _run(workload: TaskWorkload) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flow.cli.main", "tasks", "run", "--workload",
                           workload.to_json()], capture_output=True, text=True, timeout=60)


def test_flow_tasks_run_fails_a_try_whose_process_died_and_says_why(
        flow_home: Path, engine: Engine, store: Store, plugins: object) -> None:
    path = flow_home / "dags" / "crashy.py"
    path.write_text(DAG_FILE)
    [dag] = load_dag_file(path).dags
    queue_task(engine, dag, "crash")
    done = _run(TaskWorkload(dag_id="crashy", run_id="manual__test", task_id="crash",
                             try_number=1, dag_file=str(path)))
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 1
    assert outcome["state"] == "failed"
    assert "exited with code 9" in outcome["message"]
    assert store.states("crashy")["crash"] == "failed"
    log = Path(outcome["log_path"]).read_text()
    assert "leaving now" in log and "exited with code 9 without reporting a state" in log


def test_flow_tasks_run_fails_a_task_that_is_no_longer_in_its_file(
        flow_home: Path, engine: Engine, store: Store, plugins: object) -> None:
    path = flow_home / "dags" / "crashy.py"
    path.write_text(DAG_FILE)
    [dag] = load_dag_file(path).dags
    queue_task(engine, dag, "fine")
    path.write_text(DAG_FILE.replace('task_id="fine"', 'task_id="renamed"'))
    done = _run(TaskWorkload(dag_id="crashy", run_id="manual__test", task_id="fine",
                             try_number=1, dag_file=str(path)))
    assert done.returncode == 4
    assert "task 'fine' not found" in json.loads(done.stdout.splitlines()[-1])["message"]
    assert store.states("crashy")["fine"] == "failed"


def test_states_for_run_lists_every_task_instance_in_each_format(
        flow_home: Path, engine: Engine, plugins: object) -> None:
    path = flow_home / "dags" / "crashy.py"
    path.write_text(DAG_FILE)
    [dag] = load_dag_file(path).dags
    queue_task(engine, dag, "fine")
    runner = CliRunner()
    as_json = runner.invoke(cli, ["tasks", "states-for-run", "crashy", "manual__test",
                                  "--output", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = {row["task_id"]: row for row in json.loads(as_json.output)}
    assert rows["fine"]["state"] == "queued" and rows["crash"]["state"] is None
    as_yaml = runner.invoke(cli, ["tasks", "states-for-run", "crashy", "manual__test", "-o",
                                  "yaml"])
    assert [row["task_id"] for row in yaml.safe_load(as_yaml.output)] == ["crash", "fine"]
    table = runner.invoke(cli, ["tasks", "states-for-run", "crashy", "manual__test"])
    assert "fine" in table.output and "queued" in table.output


def test_states_for_run_names_a_missing_run(flow_home: Path, engine: Engine) -> None:
    result = CliRunner().invoke(cli, ["tasks", "states-for-run", "crashy", "nope"])
    assert result.exit_code == 1
    assert "DAG 'crashy' has no run 'nope'" in result.output
