"""Run a DAG to completion through an executor and return the final states.

The loop does what the scheduler does for one DAG run, and nothing more: create the run and its
task instances, queue each task whose trigger rule says ``run`` (``flow.scheduling.deps``),
submit a :class:`~flow.execution.workload.TaskWorkload`, and read the executor's ``events()``.
The task runner in the executor's worker writes each try's outcome; an executor that reports a
final event while the database still says ``queued``/``running`` (a killed worker, a lost
message) has the try failed here, as the scheduler's zombie detection would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow.states import FINISHED_TI_STATES, DagRunState, DagRunType
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagRun, TaskInstance
from flow.utils.timezone import utcnow

# Events after which the executor no longer runs the try.
FINAL_EVENTS = frozenset({"success", "failed", "up_for_retry", "skipped", "refused", "lost"})


class DagRunTimeout(AssertionError):
    """The run did not finish in time; the message has every task's state and the events."""


@dataclass
class DagRunOutcome:
    """What :func:`run_dag` returns: final states and try numbers by task id, and every event."""

    run_id: str
    states: dict[str, str | None]
    try_numbers: dict[str, int]
    events: list[TaskEvent] = field(default_factory=list)

    def events_for(self, task_id: str) -> list[TaskEvent]:
        return [event for event in self.events if event.key.task_id == task_id]


def create_dag_run(dag: Any, engine: Any, run_id: str | None = None) -> str:
    """A running manual DAG run of ``dag`` with a task instance (state none) per task."""
    from flow.store.session import session_scope

    now = utcnow()
    run_id = run_id or f"test__{now.isoformat()}__{time.monotonic_ns()}"
    interval = dag.timetable.infer_manual_data_interval(run_after=now)
    with session_scope(engine) as session:
        session.add(DagRun(dag_id=dag.dag_id, run_id=run_id, logical_date=now,
                           data_interval_start=interval.start, data_interval_end=interval.end,
                           run_type=DagRunType.MANUAL, state=DagRunState.RUNNING, conf={},
                           queued_at=now, start_date=now))
        session.flush()
        for task in dag.topological_sort():
            session.add(TaskInstance(
                dag_id=dag.dag_id, run_id=run_id, task_id=task.task_id, map_index=-1,
                try_number=0, max_tries=int(getattr(task, "retries", 0) or 0), state=None,
                operator=task.task_type, queue=getattr(task, "queue", None) or "default"))
    return run_id


def queue_task(dag: Any, task_id: str, run_id: str, engine: Any) -> TaskWorkload:
    """Move the task instance to ``queued`` with the next try number; the workload to submit."""
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        row = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id, TaskInstance.map_index == -1))
        if row is None:
            raise LookupError(f"no task instance {dag.dag_id}.{task_id} in run {run_id}")
        row.state, row.try_number, row.queued_at = TIS.QUEUED, row.try_number + 1, utcnow()
        try_number = row.try_number
    return TaskWorkload(dag_id=dag.dag_id, run_id=run_id, task_id=task_id,
                        try_number=try_number, dag_file=str(dag.fileloc))


def task_states(dag: Any, run_id: str, engine: Any) -> dict[str, tuple[str | None, int]]:
    """task id -> (state, try number) as the database has them now."""
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        rows = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id)).all()
        return {row.task_id: (row.state, row.try_number) for row in rows}


def fail_unfinished_try(key: TaskKey, try_number: int, engine: Any) -> bool:
    """Fail (or retry) a try the executor gave up on while the database says it still runs."""
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        row = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == key.dag_id, TaskInstance.run_id == key.run_id,
            TaskInstance.task_id == key.task_id, TaskInstance.map_index == key.map_index))
        if row is None or row.try_number != try_number or row.state not in {TIS.QUEUED,
                                                                            TIS.RUNNING}:
            return False
        new = TIS.UP_FOR_RETRY if try_number <= row.max_tries else TIS.FAILED
        changed = session.execute(update(TaskInstance).where(
            TaskInstance.id == row.id, TaskInstance.state == row.state,
            TaskInstance.try_number == try_number).values(state=new, end_date=utcnow()))
        return bool(getattr(changed, "rowcount", 0))


def run_dag(dag: Any, executor: Any, *, engine: Any = None, timeout: float = 120.0,
            poll: float = 0.05) -> DagRunOutcome:
    """Run ``dag`` once through ``executor`` (started here, not shut down) to the end.

    Raises :class:`DagRunTimeout` naming each task's state when ``timeout`` seconds pass first.
    Retries are queued as soon as they are due (give test tasks a zero ``retry_delay``).
    """
    from flow.scheduling.deps import Decision, UpstreamStates, evaluate_trigger_rule
    from flow.store.session import get_engine

    engine = engine or get_engine()
    run_id = create_dag_run(dag, engine)
    executor.start()
    events: list[TaskEvent] = []
    in_flight: set[str] = set()
    branches_applied: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        states = task_states(dag, run_id, engine)
        if all(state in FINISHED_TI_STATES for state, _ in states.values()) and not in_flight:
            break
        if time.monotonic() > deadline:
            raise DagRunTimeout(f"DAG {dag.dag_id} did not finish in {timeout:.0f} s: "
                                f"states {states}; events {[str(e) for e in events]}")
        for task in dag.topological_sort():
            state, _ = states[task.task_id]
            if task.task_id in in_flight or state not in {None, TIS.UP_FOR_RETRY}:
                continue
            if state == TIS.UP_FOR_RETRY and not _retry_due(dag, run_id, task.task_id, engine):
                continue
            # An upstream task counts as finished once its final event is read (and a branch it
            # took applied), not when the database first says so.
            upstream = UpstreamStates.count(None if up in in_flight else states[up][0]
                                            for up in task.upstream_task_ids)
            decision = evaluate_trigger_rule(str(task.trigger_rule), upstream).decision
            if decision == Decision.RUN:
                executor.submit(queue_task(dag, task.task_id, run_id, engine))
                in_flight.add(task.task_id)
            elif decision in {Decision.SKIP, Decision.UPSTREAM_FAILED}:
                _set_state(dag, run_id, task.task_id, str(decision), engine)
        for event in executor.events():
            events.append(event)
            if event.state in FINAL_EVENTS:
                fail_unfinished_try(event.key, event.try_number, engine)
                in_flight.discard(event.key.task_id)
                if event.state == TIS.SUCCESS and event.key.task_id not in branches_applied:
                    branches_applied.add(event.key.task_id)
                    apply_branch(dag, run_id, event.key.task_id, engine)
        time.sleep(poll)
    final = task_states(dag, run_id, engine)
    return DagRunOutcome(run_id, {task_id: s for task_id, (s, _) in final.items()},
                         {task_id: n for task_id, (_, n) in final.items()}, events)


def apply_branch(dag: Any, run_id: str, task_id: str, engine: Any) -> None:
    """Skip what a branching task did not follow, as the scheduler does
    (``flow.scheduling.deps.branch_skips`` on the task's ``FOLLOWED_XCOM_KEY`` XCom)."""
    from flow.execution.xcom import get_xcom_backend
    from flow.scheduling.deps import FOLLOWED_XCOM_KEY, branch_skips
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        decision = get_xcom_backend().get_one(dag_id=dag.dag_id, run_id=run_id, task_id=task_id,
                                              key=FOLLOWED_XCOM_KEY, session=session)
    if not decision:
        return
    downstream_of = {task.task_id: task.downstream_task_ids for task in dag.tasks}
    skipped = branch_skips(decision.get("followed", []),
                           bool(decision.get("skip_all_downstream")),
                           dag.get_task(task_id).downstream_task_ids, downstream_of)
    for skipped_id in sorted(skipped):
        _set_state(dag, run_id, skipped_id, TIS.SKIPPED, engine)


def _retry_due(dag: Any, run_id: str, task_id: str, engine: Any) -> bool:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        due = session.scalar(select(TaskInstance.next_retry_at).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id))
    return due is None or due <= utcnow()


def _set_state(dag: Any, run_id: str, task_id: str, state: str, engine: Any) -> None:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id, TaskInstance.state.is_(None)).values(state=state))
