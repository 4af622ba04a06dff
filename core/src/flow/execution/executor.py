"""The executor contract: where task instances run.

An executor receives :class:`~flow.execution.workload.TaskWorkload` documents and reports
:class:`~flow.execution.workload.TaskEvent` s. It never blocks the scheduler on a task: ``submit``
returns at once and ``events`` returns what happened since the last call. The conformance suite
in :mod:`flow.testing` holds every executor to this behaviour.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload


class BaseExecutor:
    """Base class of executors; subclasses implement ``submit`` and usually ``start``."""

    name: ClassVar[str] = ""

    def __init__(self, parallelism: int = 1) -> None:
        self.parallelism = parallelism
        self._events: list[TaskEvent] = []
        self._events_lock = threading.Lock()

    def start(self) -> None:
        """Prepare to run (start workers, connect to a broker)."""

    def submit(self, workload: TaskWorkload) -> None:
        """Accept a workload; must return without waiting for the task."""
        raise NotImplementedError

    def events(self) -> list[TaskEvent]:
        """Every event since the last call, oldest first."""
        with self._events_lock:
            events, self._events = self._events, []
        return events

    def cancel(self, key: TaskKey) -> None:
        """Stop the task instance ``key`` if it is queued or running here."""

    def adopt(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Take over task instances a previous scheduler submitted; return those not adopted."""
        return list(keys)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, let running tasks finish first."""

    def report(self, event: TaskEvent) -> None:
        """Record an event for the next ``events()`` call (thread-safe)."""
        with self._events_lock:
            self._events.append(event)
