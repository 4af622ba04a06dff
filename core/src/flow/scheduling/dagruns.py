"""Creating DAG runs and their task instances from a serialized DAG.

Shared by manual triggers (:mod:`flow.scheduling.actions`), the scheduler's timetable runs and
backfills, so every run starts the same way: one ``dag_run`` row and one ``task_instance`` per
task (a mapped task gets one row at map index -1, expanded when it becomes ready). The unique
constraints (dag_id, run_id) and (dag_id, logical_date) make a second creation of the same run
fail instead of duplicating it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from flow.authoring.abstractoperator import backoff
from flow.scheduling.serialization import SerializedDag, SerializedTask
from flow.states import DagRunState
from flow.store.models import DagRun, SerializedDagModel, TaskInstance
from flow.utils.timezone import utcnow


def rowcount(result: Any) -> int:
    """Rows an UPDATE changed (the ORM's Result does not declare ``rowcount``)."""
    return int(result.rowcount)


def run_id_for(run_type: str, logical_date: datetime) -> str:
    """``scheduled__2024-01-01T00:00:00+00:00``: readable and unique per logical date."""
    return f"{run_type}__{logical_date.isoformat()}"


def load_serialized(session: Session, dag_id: str, plugins: Any = None) -> SerializedDag | None:
    row = session.get(SerializedDagModel, dag_id)
    if row is None:
        return None
    return SerializedDag.from_dict(row.data, plugins)


def create_dag_run(session: Session, dag: SerializedDag, *, run_id: str, run_type: str,
                   logical_date: datetime, data_interval: Any, conf: dict[str, Any] | None,
                   state: str = DagRunState.QUEUED, dag_hash: str | None = None,
                   backfill_id: int | None = None) -> DagRun:
    """Add a run and its task instances to ``session`` and flush (an IntegrityError when the
    run id or logical date is taken)."""
    now = utcnow()
    run = DagRun(dag_id=dag.dag_id, run_id=run_id, logical_date=logical_date,
                 data_interval_start=data_interval.start, data_interval_end=data_interval.end,
                 run_type=run_type, state=state, conf=dict(conf or {}), dag_hash=dag_hash,
                 queued_at=now, backfill_id=backfill_id,
                 start_date=now if state == DagRunState.RUNNING else None)
    session.add(run)
    session.flush()
    # One multi-row insert, not an ORM object per task: a run of a few hundred tasks is
    # created in a few milliseconds (its trigger waits for it).
    session.execute(insert(TaskInstance.__table__), task_instance_rows(dag, run_id))
    return run


def task_instance_rows(dag: SerializedDag, run_id: str) -> list[dict[str, Any]]:
    """The ``task_instance`` rows of a new run: one per task, at map index -1."""
    return [dict(
        dag_id=dag.dag_id, run_id=run_id, task_id=task.task_id, map_index=-1, try_number=0,
        max_tries=int(task.data.get("retries") or 0), state=None, operator=task.task_type,
        pool=task.data.get("pool") or "default_pool",
        pool_slots=int(task.data.get("pool_slots") or 1),
        queue=task.data.get("queue") or "default",
        priority_weight=int(task.data.get("priority_weight") or 1),
        executor=task.data.get("executor")) for task in dag.tasks]


def retry_delay(task: SerializedTask, try_number: int) -> timedelta:
    """The same backoff as ``BaseOperator.get_retry_delay``, from the recorded attributes."""
    cap = task.data.get("max_retry_delay")
    return backoff(timedelta(seconds=float(task.data.get("retry_delay") or 0.0)),
                   bool(task.data.get("retry_exponential_backoff")),
                   timedelta(seconds=cap) if cap else None, try_number)


class RetryPolicy:
    """What :func:`flow.execution.supervisor.end_dead_try` asks of a task: its retry delay."""

    def __init__(self, task: SerializedTask | None) -> None:
        self.task = task

    def get_retry_delay(self, try_number: int) -> timedelta:
        return retry_delay(self.task, try_number) if self.task is not None else timedelta(0)


def latest_run(session: Session, dag_id: str, run_type: str | None = None) -> DagRun | None:
    query = select(DagRun).where(DagRun.dag_id == dag_id)
    if run_type is not None:
        query = query.where(DagRun.run_type == run_type)
    return session.scalars(query.order_by(DagRun.logical_date.desc()).limit(1)).first()
