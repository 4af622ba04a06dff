"""The scheduler's row in the ``job`` table: its heartbeat, and the one-scheduler rule of SQLite.

A scheduler inserts a running job row, heartbeats it every ``[scheduler] heartbeat_interval``
and ends it when it stops. A job whose heartbeat is older than ``[scheduler] health_threshold``
counts as dead: its queued and running task instances (``task_instance.queued_by_job_id``) are
adopted by a live scheduler. On SQLite only one scheduler may run: the second finds the first's
live row and refuses to start, naming its host and pid (the lower id wins a simultaneous start).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import Engine, select, update

from flow.exceptions import FlowException
from flow.store.models import Job
from flow.store.session import session_scope
from flow.utils.timezone import utcnow

SCHEDULER = "scheduler"
RUNNING, SUCCESS, FAILED = "running", "success", "failed"


class SchedulerAlreadyRunning(FlowException):
    """A second scheduler on SQLite; the message names the running one."""


class SchedulerJob:
    def __init__(self, engine: Engine, *, executor: str, health_threshold: float) -> None:
        self.engine = engine
        self.executor = executor
        self.health_threshold = health_threshold
        self.id: int | None = None

    def start(self) -> int:
        """Insert this scheduler's row; on SQLite refuse if another live scheduler exists."""
        with session_scope(self.engine) as session:
            row = Job(job_type=SCHEDULER, state=RUNNING, hostname=socket.gethostname(),
                      pid=os.getpid(), executor=self.executor, start_date=utcnow(),
                      latest_heartbeat=utcnow())
            session.add(row)
            session.flush()
            self.id = row.id
        if self.engine.dialect.name == "sqlite":
            other = self._live_other(before=self.id)
            if other is not None:
                self.end(FAILED)
                raise SchedulerAlreadyRunning(
                    f"a scheduler is already running on this SQLite database (host "
                    f"{other.hostname}, pid {other.pid}, job {other.id}, last heartbeat "
                    f"{other.latest_heartbeat.isoformat()}); SQLite allows one scheduler. Stop "
                    "it, or use PostgreSQL or MySQL to run several")
        return self.id

    def _live_other(self, before: int) -> Job | None:
        cutoff = utcnow() - timedelta(seconds=self.health_threshold)
        with session_scope(self.engine) as session:
            rows = session.scalars(select(Job).where(
                Job.job_type == SCHEDULER, Job.state == RUNNING, Job.id < before,
                Job.latest_heartbeat >= cutoff).order_by(Job.id)).all()
        return next((row for row in rows if not _vanished(row)), None)

    def heartbeat(self) -> None:
        with session_scope(self.engine) as session:
            session.execute(update(Job).where(Job.id == self.id)
                            .values(latest_heartbeat=utcnow()))

    def end(self, state: str = SUCCESS) -> None:
        if self.id is None:
            return
        with session_scope(self.engine) as session:
            session.execute(update(Job).where(Job.id == self.id, Job.state == RUNNING)
                            .values(state=state, end_date=utcnow()))


def live_scheduler_ids(engine: Engine, health_threshold: float) -> set[int]:
    cutoff = utcnow() - timedelta(seconds=health_threshold)
    with session_scope(engine) as session:
        rows = session.scalars(select(Job).where(
            Job.job_type == SCHEDULER, Job.state == RUNNING, Job.latest_heartbeat >= cutoff))
        return {row.id for row in rows if not _vanished(row)}


def _vanished(job: Job) -> bool:
    """A scheduler of this host whose process is gone (killed): dead without waiting for its
    heartbeat to go stale, so a restart after ``kill -9`` starts at once."""
    if job.hostname != socket.gethostname() or job.pid is None or job.pid == os.getpid():
        return False
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
