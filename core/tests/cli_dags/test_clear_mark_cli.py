"""`flow tasks clear|mark` and `flow dags mark-run` through the real click commands and
database: the same actions as the UI and the API, recorded with source "cli"."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from flow.cli.main import cli
from flow.store.models import EventLog, TaskInstance
from flow.store.session import get_engine, session_scope

CHAIN = textwrap.dedent("""
    from datetime import datetime
    from flow import DAG
    from flow.operators import EmptyOperator

    with DAG("chain", schedule=None, start_date=datetime(2024, 1, 1)):
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> EmptyOperator(task_id="c")
""")


@pytest.fixture
def dags(flow_home: Path) -> Path:
    (flow_home / "dags" / "chain.py").write_text(CHAIN)
    return flow_home / "dags"


def flow(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _states(db_url: str) -> dict[str, tuple[str | None, int]]:
    with session_scope(get_engine(db_url)) as session:
        return {ti.task_id: (ti.state, ti.try_number)
                for ti in session.scalars(select(TaskInstance).where(
                    TaskInstance.dag_id == "chain", TaskInstance.run_id == "r1"))}


def _actions(db_url: str) -> list[tuple[str, str]]:
    with session_scope(get_engine(db_url)) as session:
        return [(row.action, row.source) for row in session.scalars(
            select(EventLog).order_by(EventLog.id))]


def test_mark_clear_and_mark_run_change_the_run_and_are_recorded(dags: Path,
                                                                   db_url: str) -> None:
    assert flow("dags", "trigger", "chain", "--run-id", "r1").exit_code == 0
    marked = flow("tasks", "mark", "chain", "r1", "a", "--state", "failed", "-o", "json")
    assert marked.exit_code == 0, marked.output
    assert json.loads(marked.output)[0]["state"] == "failed"
    assert _states(db_url)["a"][0] == "failed"

    dry = flow("tasks", "clear", "chain", "r1", "-t", "a", "--downstream", "--dry-run")
    assert dry.exit_code == 0 and "would clear" in dry.output
    assert _states(db_url)["a"][0] == "failed"  # a dry run changes nothing

    cleared = flow("tasks", "clear", "chain", "r1", "-t", "a", "--only-failed", "-o", "json")
    assert cleared.exit_code == 0, cleared.output
    assert [row["task_id"] for row in json.loads(cleared.output)] == ["a"]
    assert _states(db_url)["a"][0] is None  # cleared: the scheduler runs it again

    run = flow("dags", "mark-run", "chain", "r1", "--state", "success", "-o", "json")
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)[0]["state"] == "success"
    assert {state for state, _ in _states(db_url).values()} == {"success"}

    actions = [action for action, source in _actions(db_url) if source == "cli"]
    assert actions[-3:] == ["task_instance.mark_failed", "task_instances.clear",
                           "dag_run.mark_success"], actions


def test_unknown_run_or_task_is_a_clear_error(dags: Path, sqlite_db: str) -> None:
    assert flow("dags", "trigger", "chain", "--run-id", "r1").exit_code == 0
    missing_run = flow("tasks", "clear", "chain", "nope")
    assert missing_run.exit_code == 1 and "nope" in missing_run.output
    missing_task = flow("tasks", "mark", "chain", "r1", "zz", "--state", "success")
    assert missing_task.exit_code == 1 and "zz" in missing_task.output
    bad_state = flow("dags", "mark-run", "chain", "r1", "--state", "running")
    assert bad_state.exit_code == 2
