"""What people do to DAGs, runs and task instances: one module for the CLI, the UI and the API.

Each action is validated against the stored (serialized) DAG, never DAG code; is applied with
guarded updates; is recorded with :func:`flow.store.event_log.record_user_action` (which calls
``flow_user_action``) in the same transaction; and fires the state-changed hooks once committed.
Errors are :class:`ActionError` with an HTTP-like ``status`` (400 bad input, 404 unknown DAG,
run or task, 409 conflict) and a message a user can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flow.exceptions import FlowException, ParamValidationError
from flow.scheduling.dagruns import create_dag_run, load_serialized, rowcount, run_id_for
from flow.scheduling.serialization import SerializedDag
from flow.states import FINISHED_RUN_STATES, FINISHED_TI_STATES, DagRunState, DagRunType
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagModel, DagRun, TaskInstance
from flow.utils.timezone import utcnow


class ActionError(FlowException):
    """An action was refused; ``status`` is 400 (bad input), 404 (not found) or 409 (conflict)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Changes:
    """State changes to announce to plugins once the transaction committed."""

    runs: list[tuple[DagRun, str | None, str]] = field(default_factory=list)
    tis: list[tuple[TaskInstance, str | None, str]] = field(default_factory=list)

    def announce(self, plugins: Any) -> None:
        from flow.scheduling.wakeup import wake_schedulers

        wake_schedulers()  # first: the schedulers start on the change while plugins hear of it
        from flow.execution.runtime import DagRunSnapshot, TaskInstanceSnapshot

        for ti, previous, current in self.tis:
            plugins.task_instance_state_changed(
                TaskInstanceSnapshot(ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                                     ti.try_number, current), previous, current)
        for run, previous, current in self.runs:
            plugins.dag_run_state_changed(DagRunSnapshot.from_row(run), previous, current)


@contextlib.contextmanager
def _transaction(session: Session | None) -> Iterator[Session]:
    """The caller's session (flushed, committed by the caller) or a new committed one."""
    if session is not None:
        yield session
        session.flush()
        return
    from flow.store.session import session_scope

    with session_scope() as own:
        yield own


def _plugins(plugins: Any) -> Any:
    if plugins is not None:
        return plugins
    from flow.plugins import current

    return current()


def _record(session: Session, actor: str, action: str, target: str, details: dict[str, Any],
            source: str, remote_addr: str | None, plugins: Any) -> None:
    from flow.store.event_log import record_user_action

    if remote_addr:
        details = {**details, "remote_addr": remote_addr}
    record_user_action(actor, action, target, details, source=source, plugins=plugins,
                       session=session)


# --------------------------------------------------------------------------------- look-ups


def _dag_model(session: Session, dag_id: str) -> DagModel:
    row = session.get(DagModel, dag_id)
    if row is None:
        raise ActionError(f"no DAG {dag_id!r}: see `flow dags list` (the DAG processor must "
                          "have parsed its file)", 404)
    return row


def _serialized(session: Session, dag_id: str, plugins: Any) -> SerializedDag:
    dag = load_serialized(session, dag_id, plugins)
    if dag is None:
        raise ActionError(f"no DAG {dag_id!r}: see `flow dags list` and "
                          "`flow dags list-import-errors`", 404)
    return dag


def _run(session: Session, dag_id: str, run_id: str, *, lock: bool = False) -> DagRun:
    query = select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    if lock and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    run = session.scalars(query).first()
    if run is None:
        raise ActionError(f"DAG {dag_id!r} has no run {run_id!r}: see "
                          f"`flow dags list-runs {dag_id}`", 404)
    return run


# ---------------------------------------------------------------------------------- actions


def trigger_dag_run(dag_id: str, *, run_id: str | None = None,
                    logical_date: datetime | None = None, conf: dict[str, Any] | None = None,
                    actor: str, source: str, remote_addr: str | None = None,
                    session: Session | None = None, plugins: Any = None) -> DagRun:
    """Create a queued manual run of ``dag_id``; the scheduler starts it.

    ``conf`` is validated against the DAG's params; a run id or logical date already taken is
    refused (409) and nothing is created."""
    from flow.authoring.params import ParamsDict

    plugins = _plugins(plugins)
    if conf is not None and not isinstance(conf, dict):
        raise ActionError("conf must be a JSON object")
    if logical_date is not None and logical_date.tzinfo is None:
        raise ActionError(f"logical date {logical_date.isoformat()} has no timezone; add one "
                          "(e.g. +00:00)")
    when = logical_date or utcnow()
    run_id = run_id or run_id_for(DagRunType.MANUAL, when)
    changes = _Changes()
    with _transaction(session) as tx:
        _dag_model(tx, dag_id)
        dag = _serialized(tx, dag_id, plugins)
        try:
            ParamsDict.load(dag.params).resolve(conf or {})
        except ParamValidationError as err:
            raise ActionError(f"the run's conf was refused: {err}") from None
        _refuse_duplicate(tx, dag_id, run_id, when)
        interval = dag.timetable.infer_manual_data_interval(run_after=when)
        try:
            run = create_dag_run(tx, dag, run_id=run_id, run_type=DagRunType.MANUAL,
                                 logical_date=when, data_interval=interval, conf=conf,
                                 dag_hash=_dag_model(tx, dag_id).dag_hash)
        except IntegrityError:
            # Another trigger won the race after our check: the unique constraints decide.
            raise ActionError(f"DAG {dag_id!r} already has a run {run_id!r} or a run at "
                              f"{when.isoformat()}; nothing was created", 409) from None
        _record(tx, actor, "dag_run.trigger", f"{dag_id}/{run_id}",
                {"dag_id": dag_id, "run_id": run_id, "conf": conf or {},
                 "logical_date": when.isoformat()}, source, remote_addr, plugins)
        changes.runs.append((run, None, DagRunState.QUEUED))
    changes.announce(plugins)
    return run


def _refuse_duplicate(session: Session, dag_id: str, run_id: str, when: datetime) -> None:
    taken = session.scalars(select(DagRun).where(
        DagRun.dag_id == dag_id, (DagRun.run_id == run_id) | (DagRun.logical_date == when))
    ).first()
    if taken is None:
        return
    if taken.run_id == run_id:
        raise ActionError(f"DAG {dag_id!r} already has a run with run id {run_id!r}; choose "
                          "another --run-id. Nothing was created.", 409)
    raise ActionError(f"DAG {dag_id!r} already has a run at logical date {when.isoformat()} "
                      f"({taken.run_id!r}); choose another logical date. Nothing was created.",
                      409)


def set_paused(dag_id: str, paused: bool, *, actor: str, source: str,
               remote_addr: str | None = None, session: Session | None = None,
               plugins: Any = None) -> None:
    """Pause (no new runs are created, nothing new is queued) or unpause ``dag_id``."""
    plugins = _plugins(plugins)
    with _transaction(session) as tx:
        row = _dag_model(tx, dag_id)
        row.is_paused = bool(paused)
        _record(tx, actor, "dag.pause" if paused else "dag.unpause", dag_id,
                {"dag_id": dag_id}, source, remote_addr, plugins)
    if not paused:
        from flow.scheduling.wakeup import wake_schedulers

        wake_schedulers()


def delete_dag_run(dag_id: str, run_id: str, *, actor: str, source: str,
                   remote_addr: str | None = None, session: Session | None = None,
                   plugins: Any = None) -> None:
    """Delete a run with its task instances, tries and XComs."""
    plugins = _plugins(plugins)
    with _transaction(session) as tx:
        run = _run(tx, dag_id, run_id)
        # Explicit: the task instance rows' cascade is the database's, and SQLite enforces it
        # only with foreign keys on; deleting the children first works everywhere.
        tx.execute(delete(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                              TaskInstance.run_id == run_id))
        tx.delete(run)
        _record(tx, actor, "dag_run.delete", f"{dag_id}/{run_id}",
                {"dag_id": dag_id, "run_id": run_id}, source, remote_addr, plugins)


def clear_task_instances(dag_id: str, run_id: str, task_ids: list[str] | None, *,
                         map_indexes: list[int] | None = None, downstream: bool = False,
                         upstream: bool = False, only_failed: bool = False,
                         dry_run: bool = False, actor: str, source: str,
                         remote_addr: str | None = None, session: Session | None = None,
                         plugins: Any = None) -> list[TaskInstance]:
    """Send task instances back to state none so the scheduler runs them again.

    The try number is kept, so the next try is numbered one higher; a finished run goes back
    to queued. Returns the cleared task instances (with ``dry_run``: those that would be)."""
    plugins = _plugins(plugins)
    changes = _Changes()
    with _transaction(session) as tx:
        run = _run(tx, dag_id, run_id, lock=not dry_run)
        dag = load_serialized(tx, dag_id, plugins)
        wanted = _with_relatives(dag, task_ids, downstream=downstream, upstream=upstream)
        query = select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                           TaskInstance.run_id == run_id)
        if wanted is not None:
            query = query.where(TaskInstance.task_id.in_(sorted(wanted)))
        if map_indexes:
            query = query.where(TaskInstance.map_index.in_(map_indexes))
        if only_failed:
            query = query.where(TaskInstance.state.in_([TIS.FAILED, TIS.UPSTREAM_FAILED]))
        tis = list(tx.scalars(query.order_by(TaskInstance.task_id, TaskInstance.map_index)))
        if dry_run:
            return tis
        for ti in tis:
            _clear_one(tx, ti, changes)
        if tis:
            _requeue_run(tx, run, changes)
        _record(tx, actor, "task_instances.clear", f"{dag_id}/{run_id}",
                {"dag_id": dag_id, "run_id": run_id, "task_ids": sorted({t.task_id for t in tis}),
                 "downstream": downstream, "upstream": upstream, "only_failed": only_failed},
                source, remote_addr, plugins)
    changes.announce(plugins)
    return tis


def _with_relatives(dag: SerializedDag | None, task_ids: list[str] | None, *,
                    downstream: bool, upstream: bool) -> set[str] | None:
    if task_ids is None:
        return None
    wanted = set(task_ids)
    if dag is None:
        return wanted
    unknown = sorted(wanted - set(dag.task_dict))
    if unknown:
        raise ActionError(f"DAG {dag.dag_id!r} has no task(s) {', '.join(unknown)}", 404)
    if downstream:
        wanted |= _reachable(dag, task_ids, "downstream_task_ids")
    if upstream:
        wanted |= _reachable(dag, task_ids, "upstream_task_ids")
    return wanted


def _reachable(dag: SerializedDag, start: Iterable[str], direction: str) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for neighbour in getattr(dag.task_dict[todo.pop()], direction):
            if neighbour not in seen:
                seen.add(neighbour)
                todo.append(neighbour)
    return seen


def _clear_one(session: Session, ti: TaskInstance, changes: _Changes) -> None:
    previous = ti.state
    condition = TaskInstance.state.is_(None) if previous is None else \
        TaskInstance.state == previous
    changed = session.execute(
        update(TaskInstance).where(TaskInstance.id == ti.id, condition)
        .values(state=None, next_retry_at=None, end_date=None, queued_by_job_id=None,
                updated_at=utcnow())
        .execution_options(synchronize_session=False))
    if rowcount(changed) and previous is not None:
        # A running try that is cleared keeps running; its end is refused by the guarded
        # update (state is no longer running) and the next try gets the next number.
        ti.state = None
        changes.tis.append((ti, previous, "none"))


def _requeue_run(session: Session, run: DagRun, changes: _Changes) -> None:
    if run.state in FINISHED_RUN_STATES:
        previous = run.state
        run.state, run.end_date, run.queued_at = DagRunState.QUEUED, None, utcnow()
        changes.runs.append((run, previous, DagRunState.QUEUED))


def clear_dag_run(dag_id: str, run_id: str, *, only_failed: bool = False,
                  dry_run: bool = False, actor: str, source: str,
                  remote_addr: str | None = None, session: Session | None = None,
                  plugins: Any = None) -> list[TaskInstance]:
    """Clear every task instance of a run (or only the failed ones)."""
    return clear_task_instances(dag_id, run_id, None, only_failed=only_failed, dry_run=dry_run,
                                actor=actor, source=source, remote_addr=remote_addr,
                                session=session, plugins=plugins)


def set_task_instance_state(dag_id: str, run_id: str, task_id: str, state: str, *,
                            map_index: int = -1, actor: str, source: str,
                            remote_addr: str | None = None, session: Session | None = None,
                            plugins: Any = None) -> TaskInstance:
    """Mark a task instance ``success`` or ``failed``; the scheduler re-evaluates its run."""
    if state not in (TIS.SUCCESS, TIS.FAILED):
        raise ActionError(f"a task instance can be marked success or failed, not {state!r}")
    plugins = _plugins(plugins)
    changes = _Changes()
    with _transaction(session) as tx:
        run = _run(tx, dag_id, run_id, lock=True)
        ti = tx.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index)).first()
        if ti is None:
            index = f"[{map_index}]" if map_index >= 0 else ""
            raise ActionError(f"run {run_id!r} of DAG {dag_id!r} has no task instance "
                              f"{task_id}{index}", 404)
        previous = ti.state
        if previous != state:
            now = utcnow()
            ti.state, ti.end_date, ti.next_retry_at = state, now, None
            ti.start_date = ti.start_date or now
            changes.tis.append((ti, previous, state))
            _requeue_run(tx, run, changes)
        _record(tx, actor, f"task_instance.mark_{state}", f"{dag_id}/{run_id}/{task_id}",
                {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                 "map_index": map_index, "previous": previous}, source, remote_addr, plugins)
    changes.announce(plugins)
    return ti


def set_dag_run_state(dag_id: str, run_id: str, state: str, *, actor: str, source: str,
                      remote_addr: str | None = None, session: Session | None = None,
                      plugins: Any = None) -> DagRun:
    """Mark a run ``success`` (its unfinished tasks succeed), ``failed`` (running and queued
    tasks fail, the others are skipped) or ``queued`` (the scheduler looks at it again)."""
    if state not in (DagRunState.SUCCESS, DagRunState.FAILED, DagRunState.QUEUED):
        raise ActionError(f"a DAG run can be marked success, failed or queued, not {state!r}")
    plugins = _plugins(plugins)
    changes = _Changes()
    with _transaction(session) as tx:
        run = _run(tx, dag_id, run_id, lock=True)
        previous = run.state
        if state != DagRunState.QUEUED:
            _finish_unfinished(tx, run, state, changes)
        now = utcnow()
        run.state = state
        run.end_date = None if state == DagRunState.QUEUED else now
        if previous != state:
            changes.runs.append((run, previous, state))
        _record(tx, actor, f"dag_run.mark_{state}", f"{dag_id}/{run_id}",
                {"dag_id": dag_id, "run_id": run_id, "previous": previous}, source,
                remote_addr, plugins)
    changes.announce(plugins)
    return run


def _finish_unfinished(session: Session, run: DagRun, state: str, changes: _Changes) -> None:
    tis = session.scalars(select(TaskInstance).where(
        TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)).all()
    now = utcnow()
    for ti in tis:
        if ti.state in FINISHED_TI_STATES:
            continue
        if state == DagRunState.SUCCESS:
            new = TIS.SUCCESS
        else:
            new = TIS.FAILED if ti.state in (TIS.RUNNING, TIS.QUEUED) else TIS.SKIPPED
        previous = ti.state
        ti.state, ti.end_date, ti.next_retry_at = new, now, None
        changes.tis.append((ti, previous, new))
