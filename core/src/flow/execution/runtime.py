"""``RuntimeTaskInstance``: the ``ti`` a running task sees in its context.

It pushes and pulls XComs through the configured backend and records branch decisions. A branch
decision is stored as an XCom under :data:`~flow.scheduling.deps.FOLLOWED_XCOM_KEY`, so it
survives the task's process: ``flow dags test`` and the scheduler read it from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flow.scheduling.deps import FOLLOWED_XCOM_KEY

if TYPE_CHECKING:
    from sqlalchemy import Engine

RETURN_VALUE = "return_value"
_task_log = logging.getLogger("flow.task")
_NOTHING = object()


@dataclass(frozen=True)
class TaskInstanceSnapshot:
    """A detached view of a task instance, given to ``flow_task_instance_state_changed``."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None


@dataclass(frozen=True)
class DagRunSnapshot:
    """A detached view of a DAG run: the ``dag_run`` of the context and of event hooks."""

    dag_id: str
    run_id: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_type: str
    state: str
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> DagRunSnapshot:
        return cls(row.dag_id, row.run_id, row.logical_date, row.data_interval_start,
                   row.data_interval_end, row.run_type, row.state, dict(row.conf or {}),
                   row.start_date)


class RuntimeTaskInstance:
    """One try of one task instance, as the task itself sees it."""

    def __init__(self, *, ti_id: int, dag: Any, task: Any, run_id: str, map_index: int,
                 try_number: int, max_tries: int, engine: Engine | None, xcom_backend: Any,
                 xcom_sink: dict[str, str] | None = None, channel: Any = None) -> None:
        self.id = ti_id
        self.dag = dag
        self.task = task
        self.dag_id: str = dag.dag_id
        self.task_id: str = task.task_id
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = try_number
        self.max_tries = max_tries
        self.followed: list[str] | None = None
        self._engine = engine  # None: this process's default engine, made on first use
        self._xcom = xcom_backend
        # Set by a supervised try with the database backend: pushed values are serialized and
        # size-checked here, and written by the supervisor with the try's end.
        self._sink = xcom_sink
        # Set in a supervised try with the database backend: XComs are read through the
        # supervisor (flow.execution.channel), not from this process.
        self._channel = channel
        self.log = _task_log

    def __repr__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return (f"<TaskInstance {self.dag_id}.{self.task_id}{index} run={self.run_id} "
                f"try={self.try_number}>")

    def _database(self) -> Engine:
        from flow.store.session import get_engine

        if self._engine is None:
            self._engine = get_engine()
        return self._engine

    # -------------------------------------------------------------------------------- XComs

    def xcom_push(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for this task instance (JSON; size-checked)."""
        if self._sink is not None:  # it leaves with the try's end: no SQLAlchemy needed here
            text = self._xcom.serialize(value)
            self._xcom.check_size(text, dag_id=self.dag_id, run_id=self.run_id,
                                  task_id=self.task_id, map_index=self.map_index, key=key)
            self._sink[key] = text
            return
        from flow.store.session import session_scope

        with session_scope(self._database()) as session:
            self._xcom.set(ti_id=self.id, dag_id=self.dag_id, run_id=self.run_id,
                           task_id=self.task_id, map_index=self.map_index, key=key,
                           value=value, session=session)

    def _flush_sink(self) -> None:
        """Write what this try pushed so far (a pull of its own XComs reads it back)."""
        sink = self._sink
        if not sink:
            return
        pending = dict(sink)
        sink.clear()
        self._sink = None
        try:
            for key, text in pending.items():
                self.xcom_push(key, self._xcom.deserialize(text))
        finally:
            self._sink = sink

    def xcom_pull(self, task_ids: str | Iterable[str] | None = None, key: str = RETURN_VALUE,
                  map_indexes: int | Sequence[int] | None = None, default: Any = None) -> Any:
        """The value ``task_ids`` pushed under ``key`` in this DAG run.

        One task id gives one value; for a mapped task (and no ``map_indexes``) the list of
        every map index's value, in map index order. A list of task ids gives a list of those.
        """
        if task_ids is None:
            task_ids = self.task_id
        if not isinstance(task_ids, str):
            return [self.xcom_pull(task_id, key, map_indexes, default) for task_id in task_ids]
        return self._pull_one(task_ids, key, map_indexes, default)

    def _pull_one(self, task_id: str, key: str, map_indexes: int | Sequence[int] | None,
                  default: Any) -> Any:
        if task_id == self.task_id:
            self._flush_sink()
        upstream = self.dag.task_dict.get(task_id)
        mapped = bool(getattr(upstream, "is_mapped", False))
        if isinstance(map_indexes, int):
            indexes: list[int] | None = [map_indexes]
        elif map_indexes is not None:
            indexes = list(map_indexes)
        else:
            indexes = None if mapped else [-1]
        asked, rows = (False, []) if self._channel is None else self._channel.ask(
            "xcom_get", dag_id=self.dag_id, run_id=self.run_id, task_ids=[task_id], key=key,
            map_indexes=indexes)
        if asked:
            values = [self._xcom.deserialize(text) for _, _, text in rows]
        else:
            from flow.store.session import session_scope

            with session_scope(self._database()) as session:
                records = self._xcom.get_many(dag_id=self.dag_id, run_id=self.run_id,
                                              task_ids=[task_id], key=key,
                                              map_indexes=indexes, session=session)
            values = [record.value for record in records]
        if isinstance(map_indexes, int) or (indexes == [-1] and not mapped):
            return values[0] if values else default
        return values

    # ------------------------------------------------------------------------------ branches

    def follow_branches(self, task_ids: Iterable[str] | str | None,
                        skip_all_downstream: bool = False) -> list[str]:
        """Run only ``task_ids`` of this task's direct downstream tasks; skip the others.

        With ``skip_all_downstream`` (a short circuit that ignores trigger rules) everything
        downstream of a task not followed is skipped too.
        """
        if task_ids is None:
            ids: list[str] = []
        elif isinstance(task_ids, str):
            ids = [task_ids]
        else:
            ids = list(task_ids)
        unknown = [task_id for task_id in ids if task_id not in self.dag.task_dict]
        if unknown:
            raise ValueError(f"task {self.task_id!r} chose to follow {unknown}, which "
                             f"{'is' if len(unknown) == 1 else 'are'} not in DAG "
                             f"{self.dag_id!r}; downstream tasks: "
                             f"{sorted(self.task.downstream_task_ids)}")
        not_downstream = [t for t in ids if t not in self.task.downstream_task_ids]
        if not_downstream:
            self.log.warning("following %s, which is not directly downstream of %s: ignored",
                             not_downstream, self.task_id)
        self.followed = sorted(set(ids))
        self.xcom_push(FOLLOWED_XCOM_KEY, {"followed": self.followed,
                                           "skip_all_downstream": bool(skip_all_downstream)})
        self.log.info("following %s; skipping the other downstream tasks",
                      self.followed or "no task")
        return self.followed
