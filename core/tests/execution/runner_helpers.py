"""Helpers for the execution tests: reading what a run wrote, queueing a try."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from flow.store.models import DagRun, TaskInstance, TaskInstanceTry, XComModel


class Store:
    """Reads of what a run wrote, for assertions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _all(self, query: Any) -> list[Any]:
        from flow.store.session import session_scope

        with session_scope(self.engine) as session:
            return list(session.scalars(query).all())

    def tis(self, dag_id: str) -> dict[tuple[str, int], TaskInstance]:
        rows = self._all(select(TaskInstance).where(TaskInstance.dag_id == dag_id))
        return {(row.task_id, row.map_index): row for row in rows}

    def states(self, dag_id: str) -> dict[str, str | None]:
        return {task_id: row.state for (task_id, index), row in self.tis(dag_id).items()
                if index == -1}

    def runs(self, dag_id: str) -> list[DagRun]:
        return self._all(select(DagRun).where(DagRun.dag_id == dag_id))

    def tries(self, ti_id: int) -> list[TaskInstanceTry]:
        return self._all(select(TaskInstanceTry).where(TaskInstanceTry.task_instance_id == ti_id)
                         .order_by(TaskInstanceTry.try_number))

    def xcom(self, dag_id: str, task_id: str, key: str = "return_value",
             map_index: int = -1) -> Any:
        from flow import serialization

        rows = self._all(select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.task_id == task_id, XComModel.key == key,
            XComModel.map_index == map_index))
        return serialization.loads(rows[0]) if rows else None


def queue_task(engine: Engine, dag: Any, task_id: str, *, try_number: int = 1,
               run_id: str = "manual__test") -> int:
    """Create a running DAG run with every task instance of ``dag``, and queue ``task_id``
    for ``try_number``: what the scheduler does before an executor runs the try."""
    from datetime import UTC, datetime

    from flow.store.session import session_scope

    when = datetime(2024, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(DagRun(dag_id=dag.dag_id, run_id=run_id, logical_date=when,
                           data_interval_start=when, data_interval_end=when,
                           run_type="manual", state="running", conf={}, start_date=when))
        session.flush()
        queued = None
        for task in dag.tasks:
            row = TaskInstance(dag_id=dag.dag_id, run_id=run_id, task_id=task.task_id,
                               map_index=-1, max_tries=task.retries, operator=task.task_type)
            if task.task_id == task_id:
                row.state, row.try_number = "queued", try_number
            session.add(row)
            session.flush()
            if task.task_id == task_id:
                queued = row.id
    assert queued is not None
    return queued


def requeue(engine: Engine, ti_id: int, try_number: int) -> None:
    from sqlalchemy import update

    from flow.store.session import session_scope

    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(TaskInstance.id == ti_id)
                        .values(state="queued", try_number=try_number))
