"""Queueing ready task instances: the scheduler's critical section.

Ready means ``scheduled``, or ``up_for_retry`` whose ``next_retry_at`` passed, in a running run
of an unpaused DAG. Candidates are taken by priority weight (highest first), then the oldest
run, and queued while the pool has open slots, the DAG is under ``max_active_tasks`` and the
executor under ``[core] parallelism``. Each is one guarded update
(``state = :expected AND try_number = :n`` -> ``queued``, try number + 1), so two schedulers can
never queue the same try.

With several schedulers (PostgreSQL, MySQL) the pool rows are locked (``FOR UPDATE``, in name
order) for the whole section, so slot accounting is exact across schedulers, and candidate rows
are read with ``FOR UPDATE SKIP LOCKED`` so a scheduler never waits on rows another is handling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Table, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from flow.scheduling.pools import occupancy
from flow.states import DagRunState
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagModel, DagRun, Pool, TaskInstance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedTry:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    fileloc: str
    dag_hash: str | None
    queue: str
    pool: str
    # The state it was queued from (scheduled, up_for_retry); None for a try already queued
    # and handed to the executor again.
    previous: str | None = None


def queue_ready(session: Session, *, job_id: int | None, executor_slots: int,
                now: datetime, warned_pools: set[str] | None = None) -> list[QueuedTry]:
    """Queue what may run now; returns the tries to hand to the executor once committed."""
    if executor_slots <= 0:
        return []
    locking = session.get_bind().dialect.name != "sqlite"
    connection = session.connection()
    open_slots = {name: slots for name, slots in connection.execute(
        _POOLS_LOCKED if locking else _POOLS)}
    candidates = _candidates(session, now, limit=max(executor_slots * 4, 64), locking=locking)
    if not candidates:
        return []
    taken, active = occupancy(session)
    for name, used in taken.items():
        if name in open_slots:
            open_slots[name] -= used
    chosen: list[Any] = []
    for ti in candidates:
        if len(chosen) >= executor_slots:
            break
        if ti.pool not in open_slots:
            if warned_pools is not None and ti.pool not in warned_pools:
                warned_pools.add(ti.pool)
                log.warning("task %s.%s uses pool %r, which does not exist; it waits until "
                            "`flow pools set %s SLOTS` creates it", ti.dag_id, ti.task_id,
                            ti.pool, ti.pool)
            continue
        if open_slots[ti.pool] < ti.pool_slots:
            continue
        if ti.max_active_tasks is not None and active.get(ti.dag_id, 0) >= ti.max_active_tasks:
            continue
        open_slots[ti.pool] -= ti.pool_slots
        active[ti.dag_id] = active.get(ti.dag_id, 0) + 1
        chosen.append(ti)
    return _queue(session, chosen, job_id, now)


def _queue(session: Session, chosen: list[Any], job_id: int | None,
           now: datetime) -> list[QueuedTry]:
    """One guarded UPDATE for the chosen rows, and which were queued by it (on PostgreSQL and
    MySQL the rows are locked, so all are; on SQLite the one scheduler's write transaction
    decides): returned by the update where the database can (PostgreSQL, SQLite), else read
    back."""
    if not chosen:
        return []
    ids = [ti.id for ti in chosen]
    connection = session.connection()
    values = {"ids": ids, "now": now, "job_id": job_id}
    if connection.dialect.update_returning:
        queued = dict(connection.execute(_QUEUE_RETURNING, values).all())
    else:
        connection.execute(_QUEUE, values)
        queued = dict(connection.execute(
            _QUEUED_BY_JOB if job_id is not None else _QUEUED_BY_NO_JOB, values).all())
    return [QueuedTry(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, queued[ti.id], ti.fileloc,
                      ti.dag_hash, ti.queue, ti.pool, ti.state)
            for ti in chosen if ti.id in queued]


def _candidates(session: Session, now: datetime, *, limit: int,
                locking: bool) -> list[Any]:
    dialect = session.get_bind().dialect.name
    query = _CANDIDATES.get(dialect)
    if query is None:  # built once per dialect: building it costs more than running it
        query = _CANDIDATES[dialect] = _candidates_query(dialect, locking)
    # On the connection: the ORM's execution path costs more than the query.
    return list(session.connection().execute(query, {"now": now, "limit": limit}).all())


_CANDIDATES: dict[str, Any] = {}


def _candidates_query(dialect: str, locking: bool) -> Any:
    now = bindparam("now")
    ready = or_(TaskInstance.state == TIS.SCHEDULED,
                and_(TaskInstance.state == TIS.UP_FOR_RETRY,
                     or_(TaskInstance.next_retry_at.is_(None), TaskInstance.next_retry_at <= now)))
    query = (select(TaskInstance.id, TaskInstance.dag_id, TaskInstance.run_id,
                    TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state,
                    TaskInstance.pool,
                    TaskInstance.pool_slots, TaskInstance.queue, DagModel.fileloc,
                    DagModel.dag_hash, DagModel.max_active_tasks)
             .join(DagRun, and_(DagRun.dag_id == TaskInstance.dag_id,
                                DagRun.run_id == TaskInstance.run_id))
             .join(DagModel, DagModel.dag_id == TaskInstance.dag_id)
             .where(ready, DagRun.state == DagRunState.RUNNING, DagModel.is_paused.is_(False))
             .order_by(TaskInstance.priority_weight.desc(), DagRun.logical_date,
                       TaskInstance.id)
             .limit(bindparam("limit", type_=Integer)))
    if locking:
        query = query.with_for_update(skip_locked=True, of=TaskInstance) \
            if dialect == "postgresql" else query.with_for_update(skip_locked=True)
    return query


# Built once: building a statement costs more than running it on the scheduler's hot path.
_TI: Table = TaskInstance.__table__  # type: ignore[assignment]
_POOLS = select(Pool.name, Pool.slots).order_by(Pool.name)
_POOLS_LOCKED = _POOLS.with_for_update()
_QUEUE = (_TI.update()
          .where(_TI.c.id.in_(bindparam("ids", expanding=True)),
                 _TI.c.state.in_([TIS.SCHEDULED, TIS.UP_FOR_RETRY]))
          .values(state=TIS.QUEUED, try_number=_TI.c.try_number + 1,
                  queued_at=bindparam("now"), queued_by_job_id=bindparam("job_id"),
                  next_retry_at=None, updated_at=bindparam("now")))
_QUEUE_RETURNING = _QUEUE.returning(_TI.c.id, _TI.c.try_number)
_QUEUED = select(_TI.c.id, _TI.c.try_number).where(
    _TI.c.id.in_(bindparam("ids", expanding=True)), _TI.c.state == TIS.QUEUED,
    _TI.c.queued_at == bindparam("now"))
_QUEUED_BY_JOB = _QUEUED.where(_TI.c.queued_by_job_id == bindparam("job_id"))
_QUEUED_BY_NO_JOB = _QUEUED.where(_TI.c.queued_by_job_id.is_(None))
