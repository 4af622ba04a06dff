"""Pools: named numbers of slots that bound how many task instances run at once.

A task instance occupies ``pool_slots`` slots of its pool while it is queued or running.
``default_pool`` is created with ``[core] default_pool_slots`` the first time flow needs it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flow.exceptions import FlowException
from flow.states import TaskInstanceState as TIS
from flow.store.models import Pool, TaskInstance

DEFAULT_POOL = "default_pool"
OCCUPYING_STATES = (TIS.QUEUED, TIS.RUNNING)


class PoolError(FlowException):
    """A pool cannot be created, changed or deleted; the message says why."""


def ensure_default_pool(session: Session, slots: int | None = None) -> Pool:
    """The default pool, created with ``[core] default_pool_slots`` if missing.

    Call it first in a transaction: losing the race to create it rolls the transaction back."""
    row = session.scalars(select(Pool).where(Pool.name == DEFAULT_POOL)).first()
    if row is not None:
        return row
    if slots is None:
        from flow.config import load_config

        slots = int(load_config().get("core", "default_pool_slots"))
    row = Pool(name=DEFAULT_POOL, slots=slots, description="Default pool")
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # another process created it first
        session.rollback()
        return session.scalars(select(Pool).where(Pool.name == DEFAULT_POOL)).one()
    return row


def set_pool(session: Session, name: str, slots: int, description: str | None = None) -> Pool:
    if not name or len(name) > 256:
        raise PoolError("a pool name must have 1 to 256 characters")
    if slots < 0:
        raise PoolError(f"pool {name!r}: slots must be 0 or more, got {slots}")
    row = session.scalars(select(Pool).where(Pool.name == name)).first()
    if row is None:
        row = Pool(name=name, slots=slots, description=description)
        session.add(row)
    else:
        row.slots = slots
        if description is not None:
            row.description = description
    session.flush()
    return row


def delete_pool(session: Session, name: str) -> None:
    if name == DEFAULT_POOL:
        raise PoolError("the default_pool cannot be deleted (set its slots instead)")
    row = session.scalars(select(Pool).where(Pool.name == name)).first()
    if row is None:
        raise PoolError(f"no pool {name!r}: see `flow pools list`")
    session.delete(row)


_OCCUPIED = (select(TaskInstance.pool, TaskInstance.dag_id, func.sum(TaskInstance.pool_slots),
                    func.count())
             .where(TaskInstance.state.in_(OCCUPYING_STATES))
             .group_by(TaskInstance.pool, TaskInstance.dag_id))


def occupancy(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """What queued and running task instances take, in one read: slots per pool name, and
    task instances per DAG (for ``max_active_tasks``)."""
    slots: dict[str, int] = {}
    active: dict[str, int] = {}
    for pool, dag_id, taken, count in session.connection().execute(_OCCUPIED):
        slots[pool] = slots.get(pool, 0) + int(taken or 0)
        active[dag_id] = active.get(dag_id, 0) + int(count)
    return slots, active


def occupied_slots(session: Session) -> dict[str, int]:
    """pool name -> slots taken by queued and running task instances."""
    return occupancy(session)[0]


def pool_usage(session: Session) -> list[dict[str, Any]]:
    """Every pool with its slots, those in use (queued and running) and those open."""
    ensure_default_pool(session)
    used = occupied_slots(session)
    rows = session.scalars(select(Pool).order_by(Pool.name)).all()
    return [{"pool": row.name, "slots": row.slots, "occupied": used.get(row.name, 0),
             "open": row.slots - used.get(row.name, 0), "description": row.description or ""}
            for row in rows]
