"""What the executor reads and writes of a try in the metadata database.

The pod's exit code says whether ``flow tasks run`` succeeded, but only the database says what
the try became (``up_for_retry`` or ``failed``, ``skipped``), because the try's own process
wrote it there. When the process died before it could (an OOM kill, a deleted pod, a pod that
never started), the try is ended here through the core's guarded updates
(``end_dead_try`` / ``fail_unstartable``), with the Kubernetes reason in its log.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flow.execution.workload import TaskKey, TaskWorkload

# The states a try's own process leaves behind when it ends.
ENDED = frozenset({"success", "failed", "up_for_retry", "skipped", "upstream_failed",
                   "removed"})


def current_try(key: TaskKey, engine: Any = None) -> tuple[str | None, int] | None:
    """(state, try number) of task instance ``key`` now; None if it does not exist."""
    from sqlalchemy import select

    from flow.store.models import TaskInstance
    from flow.store.session import get_engine, session_scope

    with session_scope(engine or get_engine()) as session:
        row = session.execute(select(TaskInstance.state, TaskInstance.try_number).where(
            TaskInstance.dag_id == key.dag_id, TaskInstance.run_id == key.run_id,
            TaskInstance.task_id == key.task_id,
            TaskInstance.map_index == key.map_index)).one_or_none()
    return None if row is None else (None if row[0] is None else str(row[0]), int(row[1]))


def wait_for_end(workload: TaskWorkload, seconds: float) -> tuple[str | None, int] | None:
    """The try's row, waiting up to ``seconds`` for a running try to end itself (a stopped
    pod's process may still be writing its outcome)."""
    deadline = time.monotonic() + seconds
    while True:
        row = current_try(workload.key)
        if row is None or row[1] != workload.try_number or row[0] != "running" \
                or time.monotonic() >= deadline:
            return row
        time.sleep(0.2)


def end_dead(workload: TaskWorkload, reason: str) -> str | None:
    """End a running try whose pod died: ``up_for_retry`` while tries remain, else
    ``failed``; the reason goes to its log. Returns the state the try has afterwards."""
    from flow.execution.supervisor import end_dead_try
    from flow.store.session import get_engine

    state = end_dead_try(get_engine(), workload, reason,
                         retry_policy(workload.dag_id, workload.task_id), _plugins())
    if state in {"failed", "up_for_retry"}:
        append_reason(workload, reason)
    return state


def fail_unstarted(workload: TaskWorkload, reason: str) -> str | None:
    """Fail a queued try whose pod never ran it; the reason goes to its log. None if the try
    was not queued (it started, or another try replaced it)."""
    from flow.execution.logs import base_log_folder
    from flow.execution.supervisor import fail_unstartable
    from flow.store.session import get_engine

    return fail_unstartable(get_engine(), workload, reason, base_log_folder(), _plugins())


def append_reason(workload: TaskWorkload, reason: str) -> None:
    from flow.execution.logs import base_log_folder
    from flow.execution.supervisor import append_to_try_log

    append_to_try_log(base_log_folder(), workload, reason)


def retry_policy(dag_id: str, task_id: str) -> Any:
    """What ``end_dead_try`` asks of the task (its retry delay), from the stored DAG."""
    from flow.scheduling.dagruns import RetryPolicy
    from flow.scheduling.serialization import SerializedTask

    data = serialized_task(dag_id, task_id)
    return RetryPolicy(SerializedTask.from_dict(data) if data is not None else None)


class ExecutorConfigs:
    """``executor_config`` of tasks, from the stored DAGs, read once per DAG version."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str | None, dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def get(self, dag_id: str, task_id: str, dag_hash: str | None) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(dag_id)
        if cached is None or dag_hash is None or cached[0] != dag_hash:
            stored_hash, data = _serialized_dag(dag_id)
            configs = {str(task.get("task_id")): dict(task.get("executor_config") or {})
                       for task in (data or {}).get("tasks", [])}
            cached = (stored_hash, configs)
            with self._lock:
                self._cache[dag_id] = cached
        return cached[1].get(task_id, {})


def serialized_task(dag_id: str, task_id: str) -> dict[str, Any] | None:
    _, data = _serialized_dag(dag_id)
    return next((task for task in (data or {}).get("tasks", [])
                 if task.get("task_id") == task_id), None)


def _serialized_dag(dag_id: str) -> tuple[str | None, dict[str, Any] | None]:
    """The stored DAG's version and JSON; (None, None) when it was never parsed (a test's
    DAG file that no DAG processor stored): such tasks have no executor_config."""
    from flow.store.models import SerializedDagModel
    from flow.store.session import get_engine, session_scope

    with session_scope(get_engine()) as session:
        row = session.get(SerializedDagModel, dag_id)
        return (None, None) if row is None else (row.dag_hash, dict(row.data))


def _plugins() -> Any:
    from flow.plugins import current

    return current()
