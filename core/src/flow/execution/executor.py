"""The executor contract: where task instances run.

An executor receives :class:`~flow.execution.workload.TaskWorkload` documents and reports
:class:`~flow.execution.workload.TaskEvent` s. It never blocks the scheduler on a task: ``submit``
returns at once and ``events`` returns what happened since the last call. The conformance suite
in :mod:`flow.testing` holds every executor to this behaviour.

Waiting without polling: :meth:`BaseExecutor.report` also writes a byte to a wake-up pipe, so a
scheduler can sleep in :meth:`~BaseExecutor.wait_for_events` (or select on
:meth:`~BaseExecutor.fileno` together with its own file descriptors) and wake the moment a task
finishes, instead of sleeping a fixed interval between ``events()`` calls.
"""

from __future__ import annotations

import contextlib
import os
import select
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
        self._wakeup: tuple[int, int] | None = None

    def start(self) -> None:
        """Prepare to run (start workers, connect to a broker)."""

    def submit(self, workload: TaskWorkload) -> None:
        """Accept a workload; must return without waiting for the task."""
        raise NotImplementedError

    def events(self) -> list[TaskEvent]:
        """Every event since the last call, oldest first."""
        with self._events_lock:
            events, self._events = self._events, []
            self._drain_wakeup()
        return events

    def has_events(self) -> bool:
        """Whether events wait for ``events()``."""
        with self._events_lock:
            return bool(self._events)

    def wait_for_events(self, timeout: float | None = None) -> bool:
        """Block until an event is waiting for ``events()`` or ``timeout`` seconds pass (None:
        forever); True if one is waiting. Costs no CPU while it waits."""
        with self._events_lock:
            if self._events:
                return True
        ready, _, _ = select.select([self.fileno()], [], [], timeout)
        return bool(ready)

    def fileno(self) -> int:
        """A file descriptor that is readable while events wait for ``events()``: select on it
        together with other descriptors. ``events()`` drains it."""
        with self._events_lock:
            if self._wakeup is None:
                read_end, write_end = os.pipe()
                os.set_blocking(read_end, False)
                os.set_blocking(write_end, False)
                self._wakeup = (read_end, write_end)
                if self._events:
                    self._poke()
            return self._wakeup[0]

    def prepare(self, dag_file: str, dag_hash: str | None) -> None:
        """A hint that tries of the DAGs in ``dag_file`` (at version ``dag_hash``, as the
        workloads will name it) may come: an executor with warm processes can load the file
        now rather than when the first of them arrives. Never required for correctness; must
        return at once. The default does nothing."""

    def cancel(self, key: TaskKey) -> None:
        """Stop the task instance ``key`` if it is queued or running here."""

    def adopt(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Take over task instances a previous scheduler submitted; return those not adopted."""
        return list(keys)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, let running tasks finish first."""

    def report(self, *events: TaskEvent) -> None:
        """Record events for the next ``events()`` call and wake a waiter once
        (thread-safe)."""
        with self._events_lock:
            self._events.extend(events)
            self._poke()

    def close_wakeup(self) -> None:
        """Close the wake-up pipe (subclasses call this at the end of ``shutdown``)."""
        with self._events_lock:
            if self._wakeup is not None:
                for fd in self._wakeup:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._wakeup = None

    def _poke(self) -> None:
        if self._wakeup is not None:
            # A full pipe already wakes the waiter: losing this byte loses nothing.
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wakeup[1], b"\0")

    def _drain_wakeup(self) -> None:
        if self._wakeup is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wakeup[0], 4096):
                pass
