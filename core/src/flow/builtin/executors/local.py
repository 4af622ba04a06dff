"""The local executor (the default): warm worker processes that fork a child per task.

``start`` launches ``[local_executor] workers`` worker processes (0: one per two CPUs), each of
which has flow imported and a fork server that imports a DAG file once and forks the tries (see
:mod:`flow.builtin.executors.local_worker`). ``submit`` hands a workload to the least busy
worker at once, or keeps it in a queue while ``parallelism`` tries are already in flight; it
never blocks. ``prepare`` has every worker's fork server import a DAG file ahead of its tries.
A DAG file whose import ended a worker's fork server is not imported again by any worker until
it changes; its tries fail with the reason.
Each worker has a child forked per try and supervises it (timeouts, crashes, process groups:
:mod:`flow.execution.supervisor`), and sends back TaskEvents; a reader thread per worker records
them, so :meth:`wait_for_events` wakes the scheduler the moment a task ends.

Events: ``running``; then one of ``success``, ``failed``, ``up_for_retry``, ``skipped``,
``refused`` (the try was not started: a duplicate or late delivery; ``submit`` refuses a key
already in flight here without running anything), or ``lost`` (cancelled before it started, or
its worker died; the try may still be running, its heartbeat tells).

Adoption: a restarted scheduler cannot re-attach to the workers of the one before, so ``adopt``
adopts nothing and returns every key. Those tries are not abandoned: their worker outlives the
scheduler until they finish, enforces their timeouts and writes their final state, and the
task heartbeats meanwhile. The scheduler leaves a running try with a fresh heartbeat alone and
treats one with a stale heartbeat as a zombie.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any, ClassVar

from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload, WorkloadError

log = logging.getLogger(__name__)


class _Worker:
    """One worker process and the thread that reads its events."""

    def __init__(self, executor: LocalExecutor, number: int) -> None:
        self.executor = executor
        self.number = number
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "flow.builtin.executors.local_worker",
                   "--events-fd", str(write_end)]
        if executor.kill_grace is not None:
            command += ["--kill-grace", str(executor.kill_grace)]
        # Its own session: Ctrl-C in the scheduler's terminal and a kill of the scheduler's
        # group leave the worker to finish and record what it runs.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, pass_fds=(write_end,),
                                        start_new_session=True)
        os.close(write_end)
        self.events = os.fdopen(read_end, "rb")
        self.inflight: set[TaskKey] = set()
        self._send_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name=f"local-worker-{number}",
                                       daemon=True)
        self.reader.start()

    def send(self, command: dict[str, Any]) -> bool:
        assert self.process.stdin is not None
        with self._send_lock:
            try:
                self.process.stdin.write((json.dumps(command) + "\n").encode())
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):  # the worker died: its reader reports it
                return False
        return True

    def close_input(self) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()

    def _read(self) -> None:
        # What arrived together is handled together: one lock, one wake-up of the scheduler.
        fd, pending = self.events.fileno(), b""
        while chunk := os.read(fd, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            events = []
            for line in lines:
                if line.startswith(b'{"bad_dag_file"'):
                    bad = json.loads(line)
                    self.executor._on_bad_dag_file(bad["bad_dag_file"], int(bad["mtime_ns"]),
                                                   str(bad["reason"]))
                    continue
                try:
                    events.append(TaskEvent.from_json(line.decode()))
                except (WorkloadError, UnicodeDecodeError):
                    continue
            if events:
                self.executor._on_events(self, events)
        self.events.close()
        code = self.process.wait()
        self.executor._on_worker_exit(self, code)


class LocalExecutor(BaseExecutor):
    name: ClassVar[str] = "local"

    def __init__(self, parallelism: int | None = None, workers: int | None = None,
                 kill_grace: float | None = None) -> None:
        from flow.config import load_config

        config = load_config()
        super().__init__(parallelism=parallelism or int(config.get("core", "parallelism")))
        # A worker forks and supervises; its tries run in their own processes on every CPU.
        # One per two CPUs keeps up with them (measured: two workers on two CPUs were no
        # faster than one, and cost 40 MB more).
        self.worker_count = (workers or int(config.get("local_executor", "workers"))
                             or max(1, (os.cpu_count() or 1) // 2))
        self.kill_grace = kill_grace
        self._workers: list[_Worker] = []
        self._pending: collections.deque[TaskWorkload] = collections.deque()
        self._inflight: dict[TaskKey, tuple[TaskWorkload, _Worker]] = {}
        self._prepared: dict[str, str | None] = {}  # DAG file -> dag_hash, for new workers
        # DAG files that ended a worker's fork server as it imported them: path -> the
        # command that tells a worker (with the file's mtime and why), sent to every worker.
        self._bad_files: dict[str, dict[str, Any]] = {}
        self._lock = threading.Condition()
        self._stopping = False
        self._started = False

    # ---------------------------------------------------------------------------- contract

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            # Once here rather than in every worker (see local_worker.main).
            from flow.store.migrate import ensure_current
            from flow.store.session import get_engine

            ensure_current(get_engine())
            self._started, self._stopping = True, False
            self._workers = [self._new_worker(n) for n in range(self.worker_count)]

    def prepare(self, dag_file: str, dag_hash: str | None) -> None:
        """Have every worker import ``dag_file`` while it is idle (before a workload of it
        arrives), and every worker started later too."""
        with self._lock:
            if dag_file in self._prepared and self._prepared[dag_file] == dag_hash:
                return
            self._prepared[dag_file] = dag_hash
            workers = list(self._workers)
        for worker in workers:
            worker.send({"op": "load", "dag_file": dag_file, "dag_hash": dag_hash})

    def submit(self, workload: TaskWorkload) -> None:
        self.start()
        with self._lock:
            key = workload.key
            if key in self._inflight or any(w.key == key for w in self._pending):
                self.report(TaskEvent(key, "refused", workload.try_number, {
                    "message": f"refused try {workload.try_number}: this task instance is "
                               "already submitted to this executor (a duplicate submit)"}))
                return
            if self._stopping:
                self.report(TaskEvent(key, "lost", workload.try_number,
                                      {"reason": "the executor is shutting down"}))
                return
            self._pending.append(workload)
            self._dispatch()

    def cancel(self, key: TaskKey) -> None:
        with self._lock:
            for workload in list(self._pending):
                if workload.key == key:
                    self._pending.remove(workload)
                    self.report(TaskEvent(key, "lost", workload.try_number,
                                          {"reason": "cancelled before it started"}))
                    return
            entry = self._inflight.get(key)
        if entry is not None:
            entry[1].send({"op": "cancel", "key": key.to_dict()})

    def adopt(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Adopts nothing (see the module docstring): the scheduler relies on heartbeats."""
        return list(keys)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if not self._started:
                return
            if wait:
                while self._pending or self._inflight:
                    self._lock.wait()
            self._stopping = True
            for workload in self._pending:
                self.report(TaskEvent(workload.key, "lost", workload.try_number,
                                      {"reason": "the executor shut down before it ran"}))
            self._pending.clear()
            workers = list(self._workers)
        for worker in workers:
            worker.send({"op": "stop", "kill": not wait})
            worker.close_input()
        for worker in workers:
            worker.process.wait()
            worker.reader.join()
        with self._lock:
            self._workers, self._started = [], False

    # ---------------------------------------------------------------------------- inside

    @property
    def running(self) -> int:
        """Tries handed to workers and not finished."""
        with self._lock:
            return len(self._inflight)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def _new_worker(self, number: int) -> _Worker:
        """Start worker ``number`` (called with the lock held), with the DAG files to load."""
        worker = _Worker(self, number)
        for command in self._bad_files.values():
            worker.send(command)
        for dag_file, dag_hash in self._prepared.items():
            worker.send({"op": "load", "dag_file": dag_file, "dag_hash": dag_hash})
        return worker

    def _on_bad_dag_file(self, path: str, mtime_ns: int, reason: str) -> None:
        """A worker's fork server died importing ``path``: no worker imports it again until
        it changes, and its tries fail with ``reason`` (the others run on)."""
        command = {"op": "bad_file", "dag_file": path, "mtime_ns": mtime_ns, "reason": reason}
        with self._lock:
            if self._bad_files.get(path) == command:
                return
            self._bad_files[path] = command
            workers = list(self._workers)
        log.error("%s", reason)
        for worker in workers:
            worker.send(command)

    def _dispatch(self) -> None:
        """Hand queued workloads to the least busy workers while below ``parallelism``
        (called with the lock held)."""
        while self._pending and len(self._inflight) < self.parallelism and self._workers:
            workload = self._pending.popleft()
            worker = min(self._workers, key=lambda w: len(w.inflight))
            self._inflight[workload.key] = (workload, worker)
            worker.inflight.add(workload.key)
            worker.send({"op": "run", "workload": workload.to_json()})

    def _on_events(self, worker: _Worker, events: list[TaskEvent]) -> None:
        with self._lock:
            ended = False
            for event in events:
                entry = self._inflight.get(event.key)
                if (event.state != "running" and entry is not None and entry[1] is worker
                        and entry[0].try_number == event.try_number):
                    del self._inflight[event.key]
                    worker.inflight.discard(event.key)
                    ended = True
            if ended:
                self._dispatch()
                self._lock.notify_all()
            self.report(*events)

    def _on_worker_exit(self, worker: _Worker, code: int) -> None:
        with self._lock:
            lost = [self._inflight.pop(key)[0] for key in list(worker.inflight)
                    if key in self._inflight]
            worker.inflight.clear()
            for workload in lost:
                self.report(TaskEvent(workload.key, "lost", workload.try_number, {
                    "reason": f"local executor worker {worker.process.pid} exited with code "
                              f"{code}; the try may still be running (its heartbeat tells)"}))
            if worker in self._workers and not self._stopping:
                # Replace it, so the pool keeps its size.
                self._workers[self._workers.index(worker)] = self._new_worker(worker.number)
                self._dispatch()
            self._lock.notify_all()
