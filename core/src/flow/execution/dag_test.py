"""``flow dags test`` / ``dag.test()``: one whole DAG run, in this process, against the real DB.

It writes what the scheduler will write: a ``dag_run`` (run type manual, data interval from the
timetable), ``task_instance`` rows and their tries, XComs, logs. Tasks run one at a time in
dependency order; readiness comes from :mod:`flow.scheduling.deps`, the same trigger rule code
the scheduler uses, and each try goes through :func:`flow.execution.task_runner.run_task`.

Honoured: trigger rules, branching and short circuits (the followed ids a task recorded),
skips and ``upstream_failed`` propagation, retries (waiting out the retry delay unless
``wait_for_retries=False``), dynamic task mapping (expanded when the task becomes ready, from a
literal or an upstream XCom; a zero-length expansion skips the task), ``depends_on_past``, and
the DAG's ``on_success_callback`` / ``on_failure_callback``. The run fails when a leaf task
failed or was upstream_failed, or when tasks are left that can never run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine, delete, select, update

from flow.execution.runtime import DagRunSnapshot, RuntimeTaskInstance, TaskInstanceSnapshot
from flow.execution.task_runner import run_task
from flow.scheduling.deps import (
    FOLLOWED_XCOM_KEY,
    Decision,
    UpstreamStates,
    branch_skips,
    evaluate_trigger_rule,
)
from flow.states import FINISHED_TI_STATES, DagRunState, DagRunType
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagRun, TaskInstance
from flow.utils.timezone import make_aware, utcnow

log = logging.getLogger(__name__)

Key = tuple[str, int]


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    duration: float | None
    start_date: datetime | None
    end_date: datetime | None


@dataclass
class DagTestResult:
    """What a test run did: its state and every task instance's final state."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime
    tasks: list[TaskResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == DagRunState.SUCCESS

    def task_states(self) -> dict[str, str | None]:
        """task_id -> state (for a mapped task: "success" only if every index succeeded)."""
        states: dict[str, str | None] = {}
        for item in self.tasks:
            if item.task_id in states and states[item.task_id] != item.state:
                states[item.task_id] = "mixed"
            else:
                states.setdefault(item.task_id, item.state)
        return states

    def map_indexes(self, task_id: str) -> list[int]:
        return [t.map_index for t in self.tasks if t.task_id == task_id and t.map_index >= 0]


def run_dag_test(dag: Any, logical_date: datetime | None = None,
                 conf: dict[str, Any] | None = None, *, engine: Engine | None = None,
                 plugins: Any = None, wait_for_retries: bool = True,
                 echo: TextIO | None = None) -> DagTestResult:
    """Run ``dag`` once, in-process (see the module docstring). A bad ``conf`` raises
    :class:`~flow.exceptions.ParamValidationError` before anything is written."""
    from flow.plugins import current
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    engine = engine or get_engine()
    ensure_current(engine)
    plugins = plugins or current()
    params = dag.params.resolve(conf or {})
    run = _create_run(engine, plugins, dag, logical_date, conf or {})
    started = time.monotonic()
    driver = _Driver(dag, run, params, engine, plugins, wait_for_retries, echo)
    driver.run()
    result = driver.finish()
    result.duration = time.monotonic() - started
    return result


@contextlib.contextmanager
def _session(engine: Engine) -> Iterator[Any]:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        yield session


def _create_run(engine: Engine, plugins: Any, dag: Any, logical_date: datetime | None,
                conf: dict[str, Any]) -> DagRunSnapshot:
    tz = getattr(dag, "timezone", "UTC")
    when = make_aware(logical_date, tz) if logical_date is not None else utcnow()
    interval = dag.timetable.infer_manual_data_interval(run_after=when)
    run_id = f"{DagRunType.MANUAL}__{when.isoformat()}"
    now = utcnow()
    with _session(engine) as session:
        # A test run replaces an earlier one of the same date (like Airflow's dag.test).
        session.execute(delete(DagRun).where(DagRun.dag_id == dag.dag_id,
                                             (DagRun.run_id == run_id)
                                             | (DagRun.logical_date == when)))
        row = DagRun(dag_id=dag.dag_id, run_id=run_id, logical_date=when,
                     data_interval_start=interval.start, data_interval_end=interval.end,
                     run_type=DagRunType.MANUAL, state=DagRunState.RUNNING, conf=conf,
                     dag_hash=_dag_hash(dag), queued_at=now, start_date=now)
        session.add(row)
        session.flush()
        for task in dag.topological_sort():
            session.add(TaskInstance(
                dag_id=dag.dag_id, run_id=run_id, task_id=task.task_id, map_index=-1,
                try_number=0, max_tries=int(getattr(task, "retries", 0) or 0), state=None,
                operator=task.task_type, pool=getattr(task, "pool", None) or "default_pool",
                pool_slots=getattr(task, "pool_slots", 1) or 1,
                queue=getattr(task, "queue", None) or "default",
                priority_weight=getattr(task, "priority_weight", 1) or 1,
                executor=getattr(task, "executor", None)))
        snapshot = DagRunSnapshot.from_row(row)
    plugins.dag_run_state_changed(snapshot, None, DagRunState.RUNNING)
    return snapshot


def _dag_hash(dag: Any) -> str | None:
    from flow.scheduling.serialization import dag_hash, serialize_dag

    try:
        return dag_hash(serialize_dag(dag))
    except Exception:  # a DAG that cannot be serialized can still be tested
        log.warning("DAG %s cannot be serialized; its run has no dag_hash", dag.dag_id,
                    exc_info=True)
        return None


class _Driver:
    """Moves the run's task instances forward until nothing more can run."""

    def __init__(self, dag: Any, run: DagRunSnapshot, params: dict[str, Any], engine: Engine,
                 plugins: Any, wait_for_retries: bool, echo: TextIO | None) -> None:
        self.dag, self.run_info, self.params = dag, run, params
        self.engine, self.plugins = engine, plugins
        self.wait_for_retries, self.echo = wait_for_retries, echo
        self.order = [task.task_id for task in dag.topological_sort()]
        self.rows: dict[Key, TaskInstance] = {}
        self.notes: list[str] = []
        self._reload()

    def _reload(self) -> None:
        with _session(self.engine) as session:
            rows = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == self.dag.dag_id,
                TaskInstance.run_id == self.run_info.run_id)).all()
        self.rows = {(row.task_id, row.map_index): row for row in rows}

    def _tis(self, task_id: str) -> list[TaskInstance]:
        return sorted((row for (tid, _), row in self.rows.items() if tid == task_id),
                      key=lambda row: row.map_index)

    # ------------------------------------------------------------------------------ the loop

    def run(self) -> None:
        while True:
            progressed = False
            for task_id in self.order:
                progressed |= self._advance(self.dag.get_task(task_id))
            if progressed:
                continue
            waiting = [row.next_retry_at for row in self.rows.values()
                       if row.state == TIS.UP_FOR_RETRY and row.next_retry_at is not None]
            if not waiting:
                return
            if self.wait_for_retries:
                delay = (min(waiting) - utcnow()).total_seconds()
                if delay > 0:
                    log.info("waiting %.1f s for the next retry", delay)
                    time.sleep(delay)
            else:
                for row in self.rows.values():
                    row.next_retry_at = None if row.state == TIS.UP_FOR_RETRY else \
                        row.next_retry_at

    def _advance(self, task: Any) -> bool:
        tis = self._tis(task.task_id)
        pending = [row for row in tis if row.state not in FINISHED_TI_STATES]
        if not pending:
            return False
        upstream = UpstreamStates.count(
            row.state for key, row in self.rows.items() if key[0] in task.upstream_task_ids)
        evaluation = evaluate_trigger_rule(task.trigger_rule, upstream)
        if evaluation.decision == Decision.WAIT:
            return False
        if evaluation.decision in (Decision.SKIP, Decision.UPSTREAM_FAILED):
            state = TIS.SKIPPED if evaluation.decision == Decision.SKIP else TIS.UPSTREAM_FAILED
            changed = False
            for row in pending:
                changed |= self._set_state(row, state, evaluation.reason)
            return changed
        if getattr(task, "depends_on_past", False) and not self._past_allows(task):
            return False
        if getattr(task, "is_mapped", False) and (task.task_id, -1) in self.rows \
                and self.rows[(task.task_id, -1)].state is None:
            return self._expand(task)
        ran = False
        for row in pending:
            if row.state is None or (row.state == TIS.UP_FOR_RETRY and self._retry_due(row)):
                self._run_one(task, row)
                ran = True
        return ran

    def _retry_due(self, row: TaskInstance) -> bool:
        return row.next_retry_at is None or row.next_retry_at <= utcnow()

    # ---------------------------------------------------------------------------- transitions

    def _set_state(self, row: TaskInstance, state: str, reason: str) -> bool:
        previous = row.state
        with _session(self.engine) as session:
            condition = (TaskInstance.state.is_(None) if previous is None
                         else TaskInstance.state == previous)
            changed = session.execute(
                update(TaskInstance).where(TaskInstance.id == row.id, condition)
                .values(state=state, end_date=utcnow(), updated_at=utcnow())
                .execution_options(synchronize_session=False)).rowcount
        if not changed:
            self._reload()
            return True
        row.state = state
        log.info("%s[%d] -> %s: %s", row.task_id, row.map_index, state, reason)
        self._event(row, previous, state)
        return True

    def _event(self, row: TaskInstance, previous: str | None, current: str) -> None:
        snapshot = TaskInstanceSnapshot(row.dag_id, row.run_id, row.task_id, row.map_index,
                                        row.try_number, current)
        self.plugins.task_instance_state_changed(snapshot, previous, current)

    def _run_one(self, task: Any, row: TaskInstance) -> None:
        previous = row.state
        try_number = row.try_number + 1
        with _session(self.engine) as session:
            condition = (TaskInstance.state.is_(None) if previous is None
                         else TaskInstance.state == previous)
            queued = session.execute(
                update(TaskInstance).where(TaskInstance.id == row.id, condition)
                .values(state=TIS.QUEUED, try_number=try_number, queued_at=utcnow(),
                        updated_at=utcnow())
                .execution_options(synchronize_session=False)).rowcount
        if not queued:
            self._reload()
            return
        row.state, row.try_number = TIS.QUEUED, try_number
        self._event(row, previous, TIS.QUEUED)
        result = run_task(self.dag, row.task_id, row.run_id, map_index=row.map_index,
                          try_number=try_number, engine=self.engine, plugins=self.plugins,
                          echo=self.echo)
        if not result.started:
            self.notes.append(f"{row.task_id}[{row.map_index}]: {result.message}")
        self._reload()
        if self.rows[(row.task_id, row.map_index)].state == TIS.SUCCESS:
            self._apply_branch(task, row)

    def _apply_branch(self, task: Any, row: TaskInstance) -> None:
        from flow.execution.xcom import get_xcom_backend

        backend = get_xcom_backend(self.plugins)
        with _session(self.engine) as session:
            decision = backend.get_one(dag_id=row.dag_id, run_id=row.run_id,
                                       task_id=row.task_id, map_index=row.map_index,
                                       key=FOLLOWED_XCOM_KEY, session=session)
        if not decision:
            return
        downstream_of = {t.task_id: t.downstream_task_ids for t in self.dag.tasks}
        skipped = branch_skips(decision.get("followed", []),
                               bool(decision.get("skip_all_downstream")),
                               task.downstream_task_ids, downstream_of)
        for task_id in sorted(skipped):
            for ti in self._tis(task_id):
                if ti.state is None:
                    self._set_state(ti, TIS.SKIPPED, f"branch {row.task_id} did not follow it")

    def _past_allows(self, task: Any) -> bool:
        with _session(self.engine) as session:
            previous_run = session.scalar(
                select(DagRun.run_id).where(DagRun.dag_id == self.dag.dag_id,
                                            DagRun.logical_date < self.run_info.logical_date)
                .order_by(DagRun.logical_date.desc()).limit(1))
            if previous_run is None:
                return True
            states = session.scalars(select(TaskInstance.state).where(
                TaskInstance.dag_id == self.dag.dag_id, TaskInstance.run_id == previous_run,
                TaskInstance.task_id == task.task_id)).all()
        if all(state in (TIS.SUCCESS, TIS.SKIPPED) for state in states):
            return True
        note = (f"{task.task_id}: depends_on_past and the task did not succeed in the previous "
                f"run {previous_run!r}")
        if note not in self.notes:
            self.notes.append(note)
        return False

    def _expand(self, task: Any) -> bool:
        from flow.execution.xcom import get_xcom_backend

        row = self.rows[(task.task_id, -1)]
        ti = RuntimeTaskInstance(ti_id=row.id, dag=self.dag, task=task,
                                 run_id=row.run_id, map_index=-1, try_number=0,
                                 max_tries=row.max_tries, engine=self.engine,
                                 xcom_backend=get_xcom_backend(self.plugins))
        context = {"ti": ti, "params": self.params, "dag_run": self.run_info}
        try:
            length = int(task.get_map_lengths(lambda arg: arg.resolve(context)))
        except Exception as err:
            self.notes.append(f"{task.task_id}: cannot expand the mapped task: "
                              f"{type(err).__name__}: {err}")
            return self._set_state(row, TIS.FAILED, f"cannot expand: {err}")
        if length == 0:
            return self._set_state(row, TIS.SKIPPED, "expanded to zero task instances")
        with _session(self.engine) as session:
            session.execute(update(TaskInstance).where(TaskInstance.id == row.id)
                            .values(map_index=0).execution_options(synchronize_session=False))
            for index in range(1, length):
                session.add(TaskInstance(
                    dag_id=row.dag_id, run_id=row.run_id, task_id=row.task_id,
                    map_index=index, try_number=0, max_tries=row.max_tries, state=None,
                    operator=row.operator, pool=row.pool, pool_slots=row.pool_slots,
                    queue=row.queue, priority_weight=row.priority_weight,
                    executor=row.executor))
        log.info("expanded %s to %d task instances", task.task_id, length)
        self._reload()
        return True

    # ------------------------------------------------------------------------------ the end

    def finish(self) -> DagTestResult:
        self._reload()
        leaves = [t for t in self.dag.tasks if not t.downstream_task_ids]
        leaf_states = [row.state for leaf in leaves for row in self._tis(leaf.task_id)]
        unfinished = [f"{row.task_id}[{row.map_index}]" for row in self.rows.values()
                      if row.state not in FINISHED_TI_STATES]
        failed = any(state in (TIS.FAILED, TIS.UPSTREAM_FAILED) for state in leaf_states)
        if unfinished:
            self.notes.append(f"tasks that could never run: {', '.join(sorted(unfinished))}")
        state = DagRunState.FAILED if failed or unfinished else DagRunState.SUCCESS
        with _session(self.engine) as session:
            session.execute(update(DagRun).where(
                DagRun.dag_id == self.dag.dag_id, DagRun.run_id == self.run_info.run_id,
                DagRun.state == DagRunState.RUNNING)
                .values(state=state, end_date=utcnow(), updated_at=utcnow())
                .execution_options(synchronize_session=False))
            row = session.scalar(select(DagRun).where(DagRun.dag_id == self.dag.dag_id,
                                                      DagRun.run_id == self.run_info.run_id))
            snapshot = DagRunSnapshot.from_row(row)
        self.plugins.dag_run_state_changed(snapshot, DagRunState.RUNNING, state)
        self._dag_callback(state, snapshot)
        order = {task_id: index for index, task_id in enumerate(self.order)}
        tasks = [TaskResult(r.task_id, r.map_index, r.state, r.try_number, r.duration,
                            r.start_date, r.end_date)
                 for r in sorted(self.rows.values(),
                                 key=lambda r: (order.get(r.task_id, 0), r.map_index))]
        return DagTestResult(self.dag.dag_id, self.run_info.run_id, state,
                             snapshot.logical_date or utcnow(), tasks, self.notes)

    def _dag_callback(self, state: str, run: DagRunSnapshot) -> None:
        name = "on_success_callback" if state == DagRunState.SUCCESS else "on_failure_callback"
        callbacks = getattr(self.dag, name, None)
        if not callbacks:
            return
        context = {"dag": self.dag, "dag_run": run, "run_id": run.run_id,
                   "params": self.params, "reason": "; ".join(self.notes) or state}
        for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
            try:
                callback(context)
            except Exception:
                log.exception("%s %r of DAG %s raised; the run's state stays %s", name,
                              callback, self.dag.dag_id, state)


def run_task_test(dag: Any, task_id: str, logical_date: datetime | None = None, *,
                  map_index: int = -1, engine: Engine | None = None, plugins: Any = None,
                  echo: TextIO | None = None) -> Any:
    """``flow tasks test``: run one task once, ignoring its dependencies and past tries.

    Uses the manual run of ``logical_date`` (created if missing, kept if present) so upstream
    XComs of an earlier ``flow dags test`` of the same date are visible to the task.
    """
    from flow.plugins import current
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    engine = engine or get_engine()
    ensure_current(engine)
    plugins = plugins or current()
    task = dag.get_task(task_id)
    tz = getattr(dag, "timezone", "UTC")
    when = make_aware(logical_date, tz) if logical_date is not None else utcnow()
    with _session(engine) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                  DagRun.logical_date == when))
        run_id = run.run_id if run is not None else None
    if run_id is None:
        run_id = _create_run(engine, plugins, dag, when, {}).run_id
    with _session(engine) as session:
        row = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index))
        if row is None:
            if getattr(task, "is_mapped", False) and map_index < 0:
                raise ValueError(f"task {task_id!r} is mapped: give the map index to test")
            row = TaskInstance(dag_id=dag.dag_id, run_id=run_id, task_id=task_id,
                               map_index=map_index, try_number=0,
                               max_tries=int(getattr(task, "retries", 0) or 0),
                               operator=task.task_type)
            session.add(row)
            session.flush()
        try_number = row.try_number + 1
        row.state, row.try_number, row.queued_at = TIS.QUEUED, try_number, utcnow()
    return run_task(dag, task_id, run_id, map_index=map_index, try_number=try_number,
                    engine=engine, plugins=plugins, echo=echo)
