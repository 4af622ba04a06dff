"""The evaluation of many running runs (a catch-up) reads their task instances in one query on a
database server, whatever their number; on SQLite one indexed query per run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event

from flow.scheduling.actions import trigger_dag_run
from flow.states import TaskInstanceState as TIS

from .conftest import WriteDag
from .helpers import states, trigger_and_start

DAG = """
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

with DAG("many", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
"""
LOAD = "SELECT task_instance.id, task_instance.dag_id, task_instance.run_id"


def test_the_task_instances_of_every_running_run_are_read_together(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    from flow.store.models import TaskInstance

    write_dag("many.py", DAG)
    parse()
    for day in (2, 3):
        trigger_dag_run("many", actor="test", source="cli",
                        logical_date=datetime(2024, 1, day, tzinfo=UTC))
    manager, _ = trigger_and_start("many", engine)
    manager.start_queued_runs()
    loads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(LOAD):
            loads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        _, scheduled, _ = manager.evaluate_running_runs()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert scheduled == 3  # "first" of each run
    assert len(loads) == (3 if engine.dialect.name == "sqlite" else 1)
    rows = states(engine, TaskInstance, TaskInstance.task_id, TaskInstance.state)
    assert sorted(rows) == [("first", TIS.SCHEDULED)] * 3 + [("second", None)] * 3
