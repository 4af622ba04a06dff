"""The sequential executor runs each workload through `flow tasks run` in a child process."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

from runner_helpers import Store, queue_task
from sqlalchemy import Engine

from flow.builtin.executors.sequential import SequentialExecutor
from flow.execution.workload import TaskEvent, TaskWorkload
from flow.scheduling.dagbag import load_dag_file

DAG_FILE = textwrap.dedent("""
    from datetime import datetime
    from flow import DAG
    from flow.operators import BashOperator
    with DAG("seq", schedule=None, start_date=datetime(2024, 1, 1)):
        BashOperator(task_id="ok", bash_command="echo fine")
        BashOperator(task_id="bad", bash_command="exit 2")
""")


def _events(executor: SequentialExecutor, count: int) -> list[TaskEvent]:
    events: list[TaskEvent] = []
    deadline = time.monotonic() + 60
    while len(events) < count and time.monotonic() < deadline:
        events += executor.events()
        time.sleep(0.05)
    return events


def test_workloads_run_in_child_processes_and_report_their_outcome(
        flow_home: Path, engine: Engine, store: Store, plugins: Any) -> None:
    path = flow_home / "dags" / "seq.py"
    path.write_text(DAG_FILE)
    [dag] = load_dag_file(path).dags
    queue_task(engine, dag, "ok")
    from runner_helpers import requeue

    bad_id = store.tis("seq")[("bad", -1)].id
    requeue(engine, bad_id, 1)
    executor = SequentialExecutor()
    executor.start()
    for task_id in ("ok", "bad", "ok"):  # the second "ok" is a duplicate delivery
        executor.submit(TaskWorkload(dag_id="seq", run_id="manual__test", task_id=task_id,
                                     try_number=1, dag_file=str(path)))
    events = _events(executor, 6)
    executor.shutdown()
    outcomes = [(e.key.task_id, e.state) for e in events if e.state != "running"]
    assert outcomes == [("ok", "success"), ("bad", "failed"), ("ok", "refused")]
    assert store.states("seq") == {"ok": "success", "bad": "failed"}
    assert "exit code 2" in (events[3].info.get("error") or "")
