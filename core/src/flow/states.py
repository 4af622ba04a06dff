"""The states of task instances and DAG runs, and which of them are final."""

from __future__ import annotations

from enum import StrEnum


class TaskInstanceState(StrEnum):
    """``none -> scheduled -> queued -> running -> success | failed | up_for_retry``, plus the
    states the scheduler sets without running anything. ``None`` in the database is "none"."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    REMOVED = "removed"


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class DagRunType(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    BACKFILL = "backfill"


FINISHED_TI_STATES = frozenset({
    TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED,
    TaskInstanceState.SKIPPED, TaskInstanceState.REMOVED,
})
FAILED_TI_STATES = frozenset({TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED})
FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})
