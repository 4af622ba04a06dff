"""The scheduler's work on DAG runs: creating due runs, starting queued ones, evaluating them.

- :meth:`RunManager.create_due_runs`: for each active, unpaused DAG with a schedule, the next
  runs its timetable gives (``start_date``, ``end_date``, ``catchup``), as long as fewer than
  ``max_active_runs`` of its runs are queued or running; the DAG's ``next_dagrun*`` fields
  record what comes next. On PostgreSQL and MySQL the DAG rows are locked with ``FOR UPDATE
  SKIP LOCKED``, so two schedulers never create for the same DAG at once; the unique
  (dag_id, logical_date) constraint is the last line of defence.
- :meth:`RunManager.start_queued_runs`: ``queued -> running`` under ``max_active_runs``.
- :meth:`RunManager.evaluate`: each running run (row locked, SKIP LOCKED) through
  :class:`flow.scheduling.planning.RunEvaluator`, in the caller's transaction (the scheduler
  queues what became ready in the same one); ends finished runs, and reports what changed once
  the caller committed (:meth:`Evaluation.committed`). :meth:`RunManager.evaluate_running_runs`
  does the same in a transaction of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flow.execution.runtime import DagRunSnapshot, TaskInstanceSnapshot
from flow.scheduling.crashpoints import crash_point
from flow.scheduling.dagruns import RetryPolicy, create_dag_run, rowcount, run_id_for
from flow.scheduling.planning import RUN_COLUMNS, RunEvaluator, RunRow, load_task_instances
from flow.scheduling.serialization import SerializedDag
from flow.scheduling.timetables import DataInterval, TimeRestriction
from flow.states import DagRunState, DagRunType
from flow.store.models import DagModel, DagRun, SerializedDagModel
from flow.store.session import session_scope
from flow.utils.timezone import parse_datetime, utcnow

log = logging.getLogger(__name__)

DEFAULT_MAX_ACTIVE_RUNS = 16
ACTIVE_RUN_STATES = (DagRunState.QUEUED, DagRunState.RUNNING)

_RUN_TABLE: Table = DagRun.__table__  # type: ignore[assignment]
_DAG_TABLE: Table = DagModel.__table__  # type: ignore[assignment]
# Built once, one per dialect (the row locks differ): the running runs, with their DAG's
# version and file, as plain rows (ORM objects cost more to load than the evaluation).
_RUNNING = (select(*(_RUN_TABLE.c[name] for name in RUN_COLUMNS), _DAG_TABLE.c.dag_hash,
                   _DAG_TABLE.c.fileloc)
            .join_from(_RUN_TABLE, _DAG_TABLE, _DAG_TABLE.c.dag_id == _RUN_TABLE.c.dag_id)
            .where(_RUN_TABLE.c.state == DagRunState.RUNNING)
            .order_by(_RUN_TABLE.c.logical_date))
_RUNNING_LOCKED = _RUNNING.with_for_update(skip_locked=True)
_RUNNING_PG = _RUNNING.with_for_update(skip_locked=True, of=_RUN_TABLE)


@dataclass
class Evaluation:
    """What :meth:`RunManager.evaluate` changed in the caller's transaction."""

    plugins: Any
    finished: list[tuple[RunRow, str, str, str, bool]] = field(default_factory=list)
    scheduled: int = 0
    cancel: list[Any] = field(default_factory=list)
    ti_changes: list[Any] = field(default_factory=list)

    def committed(self) -> None:
        """Announce what the committed transaction changed."""
        if self.scheduled:
            crash_point("run_evaluated")
        if self.finished:
            crash_point("run_finished")
        for ti, previous, current in self.ti_changes:
            self.plugins.task_instance_state_changed(
                TaskInstanceSnapshot(ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                                     ti.try_number, current), previous, current)
        for run, state, _, _, _ in self.finished:
            self.plugins.dag_run_state_changed(DagRunSnapshot.from_row(run),
                                               DagRunState.RUNNING, state)


class RunManager:
    def __init__(self, engine: Engine, plugins: Any, max_runs_per_loop: int = 20) -> None:
        self.engine = engine
        self.plugins = plugins
        self.max_runs_per_loop = max_runs_per_loop
        self._dags: dict[str, tuple[str, SerializedDag]] = {}
        # DAG id -> whether a task of its cached version depends on the past (see serialized)
        self._depends_on_past: dict[str, bool] = {}
        self._xcom: Any = None
        self._unfinished: bool | None = True
        self._backfilling = False
        self.waiting = True  # task instances may be waiting to be queued
        # DAG id -> (file, dag_hash) of the unpaused DAGs the last run creation looked at.
        self.dag_files: dict[str, tuple[str, str | None]] = {}
        # Each running run's DAG and its undecided tasks (state none at its last evaluation),
        # each with how many more upstream successes it can see and still wait: what
        # `must_evaluate` needs to tell whether an ended try may change anything.
        self._undecided: dict[tuple[str, str], tuple[SerializedDag, dict[str, int]]] = {}
        # Each running run's branch decisions read so far (see RunEvaluator.known_decisions).
        self._decisions: dict[tuple[str, str], dict[str, Any]] = {}

    # ----------------------------------------------------------------------------- helpers

    @property
    def locking(self) -> bool:
        return self.engine.dialect.name != "sqlite"

    def xcom_backend(self) -> Any:
        if self._xcom is None:
            from flow.execution.xcom import get_xcom_backend

            self._xcom = get_xcom_backend(self.plugins)
        return self._xcom

    def serialized(self, session: Session, dag_id: str, dag_hash: str | None) -> SerializedDag:
        """The stored DAG, restored once per version."""
        cached = self._dags.get(dag_id)
        if cached is not None and dag_hash is not None and cached[0] == dag_hash:
            return cached[1]
        row = session.get(SerializedDagModel, dag_id)
        if row is None:
            raise LookupError(f"DAG {dag_id!r} has no serialized form")
        dag = SerializedDag.from_dict(row.data, self.plugins)
        self._dags[dag_id] = (row.dag_hash, dag)
        self._depends_on_past[dag_id] = any(task.data.get("depends_on_past")
                                            for task in dag.tasks)
        return dag

    def retry_policy(self, dag_id: str, task_id: str) -> RetryPolicy:
        with session_scope(self.engine) as session:
            hash_ = session.scalar(select(DagModel.dag_hash).where(DagModel.dag_id == dag_id))
            try:
                dag = self.serialized(session, dag_id, hash_)
            except LookupError:
                return RetryPolicy(None)
        return RetryPolicy(dag.task_dict.get(task_id))

    def has_unfinished(self) -> bool:
        if self._unfinished is None:
            with session_scope(self.engine) as session:
                self._unfinished = bool(session.scalar(
                    select(func.count()).select_from(DagRun).where(
                        DagRun.state == DagRunState.QUEUED)))
        return self._unfinished or self._backfilling

    def note_no_branch_decision(self, dag_id: str, run_id: str, task_id: str,
                                try_number: int) -> None:
        """An executor event said this try of an unmapped task succeeded without recording a
        branch decision: the next evaluation of its run need not read one (a try's decision
        never changes once it succeeded; without the event, it is read as before)."""
        known = self._decisions.get((dag_id, run_id))
        if known is not None:
            known[task_id] = (((-1, try_number),), None)

    def must_evaluate(self, ended: list[tuple[str, str, str, str]]) -> bool:
        """Whether the tries in ``ended`` ((dag_id, run_id, task_id, state) each) may let a task
        instance of their run be decided, or their run end, so that the running runs must be
        evaluated again.

        Only a task's downstream tasks depend on how it ended, and a run ends only once none
        of its tasks is undecided. The last evaluation noted, for each undecided task, how many
        more upstream successes its trigger rule waits through (a join after a fan-out of 200
        waits through 199). A success counts down each downstream task's figure; the runs are
        evaluated again once one would go below zero, at once for any other end (a failure,
        a skip, a retry), for a run with no undecided task left or not evaluated by this
        scheduler, and for DAGs with ``depends_on_past`` tasks (an end may let the next run
        go). A change made elsewhere (a user's clear, another scheduler) is found by the
        periodic evaluation, as before."""
        for dag_id, run_id, task_id, state in ended:
            known = self._undecided.get((dag_id, run_id))
            if state != "success" or known is None:
                return True
            dag, undecided = known
            task = dag.task_dict.get(task_id)
            if not undecided or task is None:
                return True
            for downstream_id in task.downstream_task_ids:
                left = undecided.get(downstream_id)
                if left is None:
                    continue
                if left <= 0:
                    return True
                undecided[downstream_id] = left - 1
        return False

    # ------------------------------------------------------------------------ run creation

    def create_due_runs(self) -> int:
        created = 0
        with session_scope(self.engine) as session:
            query = select(DagModel).where(DagModel.is_active.is_(True),
                                           DagModel.is_paused.is_(False)).order_by(DagModel.dag_id)
            if self.locking:
                query = query.with_for_update(skip_locked=True)
            files: dict[str, tuple[str, str | None]] = {}
            for dag_model in session.scalars(query).all():
                files[dag_model.dag_id] = (dag_model.fileloc, dag_model.dag_hash)
                try:
                    created += self._create_for(session, dag_model)
                except LookupError:
                    continue
            if created:
                self._unfinished = True
        self.dag_files = files
        if created:
            crash_point("run_created")
        return created

    def _create_for(self, session: Session, dag_model: DagModel) -> int:
        dag = self.serialized(session, dag_model.dag_id, dag_model.dag_hash)
        timetable = dag.timetable
        if not getattr(timetable, "can_be_scheduled", True):
            return 0
        restriction = TimeRestriction(_date(dag.data.get("start_date")),
                                      _date(dag.data.get("end_date")),
                                      bool(dag.data.get("catchup")))
        limit = dag_model.max_active_runs or DEFAULT_MAX_ACTIVE_RUNS
        active = session.scalar(select(func.count()).select_from(DagRun).where(
            DagRun.dag_id == dag.dag_id, DagRun.state.in_(ACTIVE_RUN_STATES))) or 0
        last = session.execute(
            select(DagRun.data_interval_start, DagRun.data_interval_end)
            .where(DagRun.dag_id == dag.dag_id, DagRun.run_type == DagRunType.SCHEDULED)
            .order_by(DagRun.data_interval_end.desc()).limit(1)).first()
        last_interval = DataInterval(last[0], last[1]) if last and last[0] and last[1] else None
        info = timetable.next_dagrun_info(last_interval, restriction)
        now, created = utcnow(), 0
        while (info is not None and info.run_after <= now and active < limit
               and created < self.max_runs_per_loop):
            logical_date = info.data_interval.start
            taken = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag.dag_id,
                                                           DagRun.logical_date == logical_date))
            if taken is None:
                run = create_dag_run(session, dag, run_id=run_id_for(DagRunType.SCHEDULED,
                                                                     logical_date),
                                     run_type=DagRunType.SCHEDULED, logical_date=logical_date,
                                     data_interval=info.data_interval, conf={},
                                     dag_hash=dag_model.dag_hash)
                self._announce_run(run, None, DagRunState.QUEUED)
                created += 1
                active += 1
            info = timetable.next_dagrun_info(info.data_interval, restriction)
        dag_model.next_dagrun = info.data_interval.start if info else None
        dag_model.next_dagrun_data_interval_start = info.data_interval.start if info else None
        dag_model.next_dagrun_data_interval_end = info.data_interval.end if info else None
        dag_model.next_dagrun_create_after = info.run_after if info else None
        return created

    def advance_backfills(self) -> None:
        from flow.scheduling.backfill import advance_backfills

        try:
            self._backfilling = advance_backfills(self.engine, self) > 0
        except IntegrityError:
            log.info("another scheduler created a backfill run first; trying again")

    # ---------------------------------------------------------------------- starting runs

    def start_queued_runs(self) -> int:
        started: list[DagRun] = []
        with session_scope(self.engine) as session:
            query = (select(DagRun).join(DagModel, DagModel.dag_id == DagRun.dag_id)
                     .where(DagRun.state == DagRunState.QUEUED, DagModel.is_paused.is_(False))
                     .order_by(DagRun.logical_date).limit(self.max_runs_per_loop * 5))
            if self.locking:
                query = query.with_for_update(skip_locked=True)
            queued = session.scalars(query).all()
            if not queued:
                return 0
            dag_ids = sorted({run.dag_id for run in queued})
            running = dict(session.execute(
                select(DagRun.dag_id, func.count()).where(
                    DagRun.dag_id.in_(dag_ids), DagRun.state == DagRunState.RUNNING)
                .group_by(DagRun.dag_id)).all())
            limits = dict(session.execute(select(DagModel.dag_id, DagModel.max_active_runs)
                                          .where(DagModel.dag_id.in_(dag_ids))).all())
            now = utcnow()
            for run in queued:
                if running.get(run.dag_id, 0) >= (limits.get(run.dag_id)
                                                  or DEFAULT_MAX_ACTIVE_RUNS):
                    continue
                changed_result = session.execute(
                    update(DagRun).where(DagRun.id == run.id,
                                         DagRun.state == DagRunState.QUEUED)
                    .values(state=DagRunState.RUNNING, start_date=now, end_date=None,
                            updated_at=now).execution_options(synchronize_session=False))
                changed = rowcount(changed_result)
                if changed:
                    run.state, run.start_date = DagRunState.RUNNING, now
                    running[run.dag_id] = running.get(run.dag_id, 0) + 1
                    started.append(run)
        if started:
            crash_point("run_started")
        for run in started:
            self._announce_run(run, DagRunState.QUEUED, DagRunState.RUNNING)
        if started:
            self._unfinished = True
        return len(started)

    # -------------------------------------------------------------------------- evaluation

    def evaluate_running_runs(self) -> tuple[list[Any], int, list[Any]]:
        """Evaluate every running run in a transaction of its own; returns (finished runs,
        task instances scheduled, running task instances to cancel)."""
        with session_scope(self.engine) as session:
            evaluation = self.evaluate(session)
        evaluation.committed()
        return evaluation.finished, evaluation.scheduled, evaluation.cancel

    def evaluate(self, session: Session) -> Evaluation:
        """Evaluate every running run in the caller's transaction (the scheduler queues what
        became ready in the same one); once it committed, the caller calls
        :meth:`Evaluation.committed`, which announces the changes."""
        evaluation = Evaluation(self.plugins)
        finished, cancel = evaluation.finished, evaluation.cancel
        waiting = 0
        undecided: dict[tuple[str, str], tuple[SerializedDag, dict[str, int]]] = {}
        decisions: dict[tuple[str, str], dict[str, Any]] = {}
        # SQLite has one writer at a time: no row locks there.
        query = _RUNNING if not self.locking else \
            _RUNNING_PG if self.engine.dialect.name == "postgresql" else _RUNNING_LOCKED
        rows = [(RunRow(*row[:-2]), row[-2], row[-1])
                for row in session.connection().execute(query)]
        # Queued runs are counted only when asked (`has_unfinished`), not on every event.
        self._unfinished = True if rows else None
        tis = load_task_instances(session, [(run.dag_id, run.run_id) for run, _, _ in rows])
        for run, dag_hash, fileloc in rows:
            try:
                dag = self.serialized(session, run.dag_id, dag_hash)
            except LookupError:
                continue
            key = (run.dag_id, run.run_id)
            decisions[key] = self._decisions.get(key, {})
            evaluator = RunEvaluator(session, run, dag, self.xcom_backend(),
                                     known_decisions=decisions[key], tis=tis[key])
            outcome = evaluator.evaluate()
            if not self._depends_on_past.get(run.dag_id, True):
                undecided[key] = (dag, {
                    ti.task_id: evaluator.waits_through.get(ti.task_id, 0)
                    for ti in evaluator.tis if ti.state is None})
            evaluation.scheduled += outcome.scheduled
            waiting += outcome.waiting
            cancel.extend(outcome.cancel)
            evaluation.ti_changes.extend(outcome.ti_changes)
            final = outcome.final_state
            ended = self._end_run(session, run, final) if final else None
            if final and ended:
                kind = "success" if final == DagRunState.SUCCESS else "failure"
                wants = bool(dag.data.get(f"has_on_{kind}_callback"))
                finished.append((ended, final, outcome.reason, fileloc, wants))
        self.waiting = waiting > 0
        self._undecided, self._decisions = undecided, decisions
        return evaluation

    def _end_run(self, session: Session, run: RunRow, state: str) -> RunRow | None:
        """End ``run`` in ``state`` (guarded: still running); the run as ended, or None."""
        now = utcnow()
        changed_result = session.execute(
            update(DagRun).where(DagRun.id == run.id, DagRun.state == DagRunState.RUNNING)
            .values(state=state, end_date=now, updated_at=now)
            .execution_options(synchronize_session=False))
        return replace(run, state=state, end_date=now) if rowcount(changed_result) else None

    def _announce_run(self, run: DagRun | RunRow, previous: str | None, current: str) -> None:
        self.plugins.dag_run_state_changed(DagRunSnapshot.from_row(run), previous, current)


def _date(text: str | None) -> Any:
    return parse_datetime(text) if text else None
