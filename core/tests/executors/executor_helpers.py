"""Helpers for driving an executor directly, as the scheduler would: rows queued by hand,
workloads submitted, events collected; and a ledger table the test tasks write to."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)

from flow.builtin.executors.local import LocalExecutor
from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent, TaskWorkload
from flow.store.models import DagRun, TaskInstance, TaskInstanceTry

RUN_ID = "manual__exec"
FINAL = {"success", "failed", "up_for_retry", "skipped", "refused", "lost"}

@contextlib.contextmanager
def local_executor(parallelism: int, workers: int = 1) -> Iterator[LocalExecutor]:
    """A started local executor with a short kill grace; shut down without waiting."""
    executor = LocalExecutor(parallelism=parallelism, workers=workers, kill_grace=0.5)
    executor.start()
    try:
        yield executor
    finally:
        executor.shutdown(wait=False)


ledger_metadata = MetaData()
LEDGER = Table("test_ledger", ledger_metadata,
               Column("task_id", String(100)), Column("try_number", Integer),
               Column("started", Double), Column("ended", Double),
               UniqueConstraint("task_id", "try_number"))


def create_run(engine: Engine, dag: Any) -> None:
    """A running DAG run with a task instance (state none) for every task of ``dag``."""
    from flow.store.session import session_scope

    when = datetime(2024, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(DagRun(dag_id=dag.dag_id, run_id=RUN_ID, logical_date=when,
                           data_interval_start=when, data_interval_end=when,
                           run_type="manual", state="running", conf={}, start_date=when))
        session.flush()
        for task in dag.tasks:
            session.add(TaskInstance(dag_id=dag.dag_id, run_id=RUN_ID, task_id=task.task_id,
                                     map_index=-1, max_tries=task.retries,
                                     operator=task.task_type))


def write_dag_with_run(path: Path, source: str, engine: Engine) -> Path:
    """Write the DAG file ``path`` and create its run (every task instance state none)."""
    from flow.scheduling.dagbag import load_dag_file

    path.write_text(source)
    [dag] = load_dag_file(path).dags
    create_run(engine, dag)
    return path


def queue(engine: Engine, dag_file: Path, dag_id: str, task_id: str,
          try_number: int = 1) -> TaskWorkload:
    """Queue ``task_id`` for ``try_number`` (what the scheduler does) and return its workload."""
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == RUN_ID,
            TaskInstance.task_id == task_id).values(state="queued", try_number=try_number))
    return TaskWorkload(dag_id=dag_id, run_id=RUN_ID, task_id=task_id, try_number=try_number,
                        dag_file=str(dag_file))


def collect(executor: BaseExecutor, count: int, timeout: float = 20.0) -> list[TaskEvent]:
    """Wait (without polling) until ``count`` final events arrived; every event, in order."""
    events: list[TaskEvent] = []
    deadline = time.monotonic() + timeout
    while sum(e.state in FINAL for e in events) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only these events after {timeout}s: {events}"
        executor.wait_for_events(left)
        events += executor.events()
    return events


def finals(events: list[TaskEvent]) -> dict[str, TaskEvent]:
    return {e.key.task_id: e for e in events if e.state in FINAL}


def ti_row(engine: Engine, dag_id: str, task_id: str) -> TaskInstance:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        row = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == RUN_ID,
            TaskInstance.task_id == task_id))
        assert row is not None
        return row


def tries(engine: Engine, ti_id: int) -> list[TaskInstanceTry]:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        return list(session.scalars(select(TaskInstanceTry).where(
            TaskInstanceTry.task_instance_id == ti_id)
            .order_by(TaskInstanceTry.try_number)).all())


def ledger_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(LEDGER)).all())


def max_concurrency(rows: list[Any]) -> int:
    points = sorted([(r.started, 1) for r in rows] + [(r.ended, -1) for r in rows],
                    key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    return peak


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> set[int]:
    """The processes ``pid`` forked that are alive or not reaped yet."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return {int(child) for child in handle.read().split()}


def fork_server_of(worker: int, timeout: float = 10.0) -> int:
    """The process a local executor worker's tries are forked from: the worker's only child
    (once the worker, just started, has forked it)."""
    deadline = time.monotonic() + timeout
    while not (forked := children(worker)):
        assert time.monotonic() < deadline, f"worker {worker} started no fork server"
        time.sleep(0.01)
    [server] = forked
    return server
