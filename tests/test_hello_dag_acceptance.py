"""The issue's acceptance example: `python hello_dag.py test` runs both tasks, and the log of
`run_first` holds `Hello World!`. Run as a real subprocess on the embedded default database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HELLO_DAG = Path(__file__).resolve().parents[1] / "examples" / "hello_dag.py"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FLOW__", "FLOW_CONN_", "FLOW_VAR_"))}
    environment["FLOW_HOME"] = str(tmp_path / "home")
    return environment


def test_python_hello_dag_test_runs_both_tasks_and_logs_hello_world(
        env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(HELLO_DAG), "test"], capture_output=True,
                          text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run_first" in done.stdout and "run_after" in done.stdout
    assert "of hello_dag: success" in done.stdout
    [log] = (tmp_path / "home" / "logs" / "dag_id=hello_dag").glob(
        "run_id=*/task_id=run_first/attempt=1.log")
    assert "Hello World!" in log.read_text()
    assert (tmp_path / "home" / "flow.db").exists()


def test_python_hello_dag_help_lists_the_commands_for_that_dag(env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, str(HELLO_DAG), "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("list-tasks", "test", "test-task", "show"):
        assert command in done.stdout


def test_python_hello_dag_show_and_list_tasks(env: dict[str, str]) -> None:
    show = subprocess.run([sys.executable, str(HELLO_DAG), "show"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert "run_first (BashOperator)" in show.stdout and "└─> run_after" in show.stdout
    tasks = subprocess.run([sys.executable, str(HELLO_DAG), "list-tasks", "-o", "json"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert '"task_id": "run_first"' in tasks.stdout
