"""The sequential executor: one task at a time, each in its own ``flow tasks run`` process.

The simplest executor that is still honest: every try runs in a fresh child process (so a
crashing task cannot take the scheduler down) through the same ``flow tasks run --workload``
entry point every other executor uses. ``submit`` only queues the workload; a background thread
runs the queue in order and reports a ``running`` event, then the outcome the child printed
(its last stdout line is a JSON object), or ``failed`` with the exit code when it printed none.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from typing import ClassVar

from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload

_STOP = None


class SequentialExecutor(BaseExecutor):
    name: ClassVar[str] = "sequential"

    def __init__(self, parallelism: int = 1, command: list[str] | None = None) -> None:
        super().__init__(parallelism=1)
        self.command = command or [sys.executable, "-m", "flow.cli.main", "tasks", "run"]
        self._queue: queue.Queue[TaskWorkload | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running: tuple[TaskKey, subprocess.Popen[str]] | None = None
        self._cancelled: set[TaskKey] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sequential-executor",
                                            daemon=True)
            self._thread.start()

    def submit(self, workload: TaskWorkload) -> None:
        self.start()
        self._queue.put(workload)

    def cancel(self, key: TaskKey) -> None:
        with self._lock:
            self._cancelled.add(key)
            running = self._running
        if running is not None and running[0] == key:
            with contextlib.suppress(ProcessLookupError):
                running[1].terminate()

    def shutdown(self, wait: bool = True) -> None:
        if self._thread is None:
            return
        if not wait:
            while True:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    break
                if dropped is not None:
                    self.report(TaskEvent(dropped.key, "lost", dropped.try_number,
                                          {"reason": "executor shut down before it ran"}))
            with self._lock:
                running = self._running
            if running is not None:
                running[1].terminate()
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _work(self) -> None:
        while True:
            workload = self._queue.get()
            if workload is _STOP:
                return
            with self._lock:
                cancelled = workload.key in self._cancelled
                self._cancelled.discard(workload.key)
            if cancelled:
                self.report(TaskEvent(workload.key, "lost", workload.try_number,
                                      {"reason": "cancelled before it started"}))
                continue
            self._run(workload)

    def _run(self, workload: TaskWorkload) -> None:
        self.report(TaskEvent(workload.key, "running", workload.try_number))
        process = subprocess.Popen([*self.command, "--workload", workload.to_json()],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with self._lock:
            self._running = (workload.key, process)
        stdout, stderr = process.communicate()
        with self._lock:
            self._running = None
        self.report(_outcome(workload, process.returncode, stdout, stderr))


def _outcome(workload: TaskWorkload, code: int, stdout: str, stderr: str) -> TaskEvent:
    lines = [line for line in stdout.splitlines() if line.strip()]
    info: dict[str, object] = {"exit_code": code}
    if lines:
        with contextlib.suppress(ValueError):
            reported = json.loads(lines[-1])
            if isinstance(reported, dict) and isinstance(reported.get("state"), str):
                info.update({k: v for k, v in reported.items() if k not in {"key", "state"}})
                return TaskEvent(workload.key, reported["state"], workload.try_number, info)
    info["stderr"] = stderr[-2000:]
    return TaskEvent(workload.key, "failed", workload.try_number, info)
