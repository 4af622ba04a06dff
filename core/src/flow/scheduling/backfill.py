"""Backfills: a DAG's runs over a range of past logical dates, worked off by the scheduler.

``flow backfill create`` stores a ``backfill`` row (after a dry run lists the dates); the
scheduler (:func:`advance_backfills`) creates its runs oldest first, at most ``max_active_runs``
of them queued or running at once. A date that already has a run is skipped (``reprocess
none``), re-run if it failed (``failed``), or re-run whatever its state (``all``; a run still
in progress is left alone). The backfill completes when every date has a finished run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from flow.exceptions import FlowException
from flow.scheduling.dagruns import create_dag_run, load_serialized, run_id_for
from flow.scheduling.serialization import SerializedDag
from flow.scheduling.timetables import DagRunInfo, TimeRestriction
from flow.states import FINISHED_RUN_STATES, DagRunState, DagRunType
from flow.store.models import Backfill, DagModel, DagRun, TaskInstance
from flow.store.session import session_scope
from flow.utils.timezone import utcnow

REPROCESS = ("none", "failed", "all")
RUNNING, COMPLETED, CANCELLED = "running", "completed", "cancelled"
MAX_DATES = 10_000


class BackfillError(FlowException):
    """A backfill cannot be created or cancelled; the message says why."""


@dataclass(frozen=True)
class PlannedRun:
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    existing_state: str | None
    action: str  # "create", "rerun" or "skip"


def backfill_dates(dag: SerializedDag, start: datetime, end: datetime) -> list[DagRunInfo]:
    """The runs the DAG's timetable has with logical dates in [start, end]."""
    if not getattr(dag.timetable, "can_be_scheduled", True):
        raise BackfillError(f"DAG {dag.dag_id!r} has no schedule ({dag.timetable.summary}); "
                            "a backfill needs one: trigger runs with `flow dags trigger` instead")
    if end < start:
        raise BackfillError(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    restriction = TimeRestriction(start, end, True)
    infos: list[DagRunInfo] = []
    info = dag.timetable.next_dagrun_info(None, restriction)
    while info is not None and info.data_interval.start <= end and len(infos) < MAX_DATES:
        infos.append(info)
        info = dag.timetable.next_dagrun_info(info.data_interval, restriction)
    return infos


def plan(session: Session, dag: SerializedDag, start: datetime, end: datetime,
         reprocess: str, backfill_id: int | None = None) -> list[PlannedRun]:
    if reprocess not in REPROCESS:
        raise BackfillError(f"--reprocess must be one of {', '.join(REPROCESS)}, "
                            f"got {reprocess!r}")
    infos = backfill_dates(dag, start, end)
    existing = {run.logical_date: run for run in session.scalars(select(DagRun).where(
        DagRun.dag_id == dag.dag_id, DagRun.logical_date >= start, DagRun.logical_date <= end))}
    planned = []
    for info in infos:
        run = existing.get(info.data_interval.start)
        if run is None:
            action = "create"
        elif backfill_id is not None and run.backfill_id == backfill_id:
            action = "done"
        elif run.state not in FINISHED_RUN_STATES:
            action = "skip"
        elif reprocess == "all" or (reprocess == "failed" and run.state == DagRunState.FAILED):
            action = "rerun"
        else:
            action = "skip"
        planned.append(PlannedRun(info.data_interval.start, info.data_interval.start,
                                  info.data_interval.end, run.state if run else None, action))
    return planned


def create_backfill(engine: Engine, dag_id: str, start: datetime, end: datetime, *,
                    reprocess: str = "none", max_active_runs: int = 10,
                    conf: dict[str, Any] | None = None, dry_run: bool = False,
                    actor: str = "", source: str = "cli") -> tuple[Backfill | None,
                                                                   list[PlannedRun]]:
    from flow.store.event_log import record_user_action

    if max_active_runs < 1:
        raise BackfillError("--max-active-runs must be at least 1")
    with session_scope(engine) as session:
        if session.get(DagModel, dag_id) is None:
            raise BackfillError(f"no DAG {dag_id!r}: see `flow dags list`")
        dag = load_serialized(session, dag_id)
        assert dag is not None
        planned = plan(session, dag, start, end, reprocess)
        if not planned:
            raise BackfillError(f"DAG {dag_id!r} has no scheduled runs between "
                                f"{start.isoformat()} and {end.isoformat()}")
        if dry_run:
            return None, planned
        running = session.scalars(select(Backfill).where(Backfill.dag_id == dag_id,
                                                         Backfill.state == RUNNING)).first()
        if running is not None:
            raise BackfillError(f"DAG {dag_id!r} already has a running backfill (id "
                                f"{running.id}); cancel it with `flow backfill cancel "
                                f"{running.id}` or wait for it")
        row = Backfill(dag_id=dag_id, from_date=start, to_date=end, reprocess_behavior=reprocess,
                       max_active_runs=max_active_runs, dag_run_conf=conf or {}, state=RUNNING)
        session.add(row)
        session.flush()
        record_user_action(actor, "backfill.create", dag_id,
                           {"dag_id": dag_id, "backfill_id": row.id, "from": start.isoformat(),
                            "to": end.isoformat(), "reprocess": reprocess}, source=source,
                           session=session)
    return row, planned


def cancel_backfill(engine: Engine, backfill_id: int, *, actor: str = "",
                    source: str = "cli") -> Backfill:
    """Stop creating runs; the backfill's queued runs are failed, running ones finish."""
    from flow.store.event_log import record_user_action

    with session_scope(engine) as session:
        row = session.get(Backfill, backfill_id)
        if row is None:
            raise BackfillError(f"no backfill {backfill_id}: see `flow backfill list`")
        if row.state != RUNNING:
            raise BackfillError(f"backfill {backfill_id} is already {row.state}")
        row.state, row.completed_at = CANCELLED, utcnow()
        for run in session.scalars(select(DagRun).where(DagRun.backfill_id == backfill_id,
                                                        DagRun.state == DagRunState.QUEUED)):
            run.state, run.end_date = DagRunState.FAILED, utcnow()
        record_user_action(actor, "backfill.cancel", row.dag_id,
                           {"dag_id": row.dag_id, "backfill_id": backfill_id}, source=source,
                           session=session)
    return row


def progress(engine: Engine) -> list[dict[str, Any]]:
    """Every backfill with how many of its runs finished, failed and are in progress."""
    with session_scope(engine) as session:
        rows = session.scalars(select(Backfill).order_by(Backfill.id)).all()
        result = []
        for row in rows:
            states = list(session.scalars(select(DagRun.state)
                                          .where(DagRun.backfill_id == row.id)))
            total = _total(session, row)
            result.append({
                "id": row.id, "dag_id": row.dag_id, "from": row.from_date, "to": row.to_date,
                "reprocess": row.reprocess_behavior, "state": row.state, "total": total,
                "success": states.count(DagRunState.SUCCESS),
                "failed": states.count(DagRunState.FAILED),
                "active": sum(1 for s in states if s not in FINISHED_RUN_STATES),
                "created_at": row.created_at, "completed_at": row.completed_at})
    return result


def _total(session: Session, row: Backfill) -> int | None:
    dag = load_serialized(session, row.dag_id)
    return None if dag is None else len(backfill_dates(dag, row.from_date, row.to_date))


def advance_backfills(engine: Engine, manager: Any) -> int:
    """The scheduler's step: create the next runs of each running backfill; returns how many
    backfills are still running."""
    running = 0
    with session_scope(engine) as session:
        query = select(Backfill).where(Backfill.state == RUNNING).order_by(Backfill.id)
        if engine.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        for row in session.scalars(query).all():
            _advance(session, row, manager)
            running += row.state == RUNNING
    return running


def _advance(session: Session, row: Backfill, manager: Any) -> int:
    dag_model = session.get(DagModel, row.dag_id)
    if dag_model is None:
        return 0
    dag = manager.serialized(session, row.dag_id, dag_model.dag_hash)
    active = len([s for s in session.scalars(select(DagRun.state).where(
        DagRun.backfill_id == row.id)) if s not in FINISHED_RUN_STATES])
    planned = plan(session, dag, row.from_date, row.to_date, row.reprocess_behavior, row.id)
    todo = [p for p in planned if p.action in ("create", "rerun")]
    if not todo and active == 0:
        row.state, row.completed_at = COMPLETED, utcnow()
        return 0
    created = 0
    for item in todo[:max(0, row.max_active_runs - active)]:
        if item.action == "create":
            create_dag_run(session, dag, run_id=run_id_for(DagRunType.BACKFILL,
                                                           item.logical_date),
                           run_type=DagRunType.BACKFILL, logical_date=item.logical_date,
                           data_interval=_Interval(item.data_interval_start,
                                                   item.data_interval_end),
                           conf=row.dag_run_conf, dag_hash=dag_model.dag_hash,
                           backfill_id=row.id)
        else:
            _rerun(session, dag.dag_id, item.logical_date, row.id)
        created += 1
    return created


@dataclass(frozen=True)
class _Interval:
    start: datetime
    end: datetime


def _rerun(session: Session, dag_id: str, logical_date: datetime, backfill_id: int) -> None:
    from sqlalchemy import update

    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id,
                                               DagRun.logical_date == logical_date)).one()
    session.execute(update(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                               TaskInstance.run_id == run.run_id)
                    .values(state=None, next_retry_at=None, end_date=None,
                            queued_by_job_id=None)
                    .execution_options(synchronize_session=False))
    run.state, run.end_date, run.backfill_id, run.queued_at = (DagRunState.QUEUED, None,
                                                               backfill_id, utcnow())
