"""Supervise tries of task instances: each runs in a forked child in its own process group.

The supervisor (the parent) is what ``flow tasks run`` and every worker of the local executor
run. It owns the try's state in the database; the child runs the task:

* **start**: the supervisor forks a child per workload (a local executor worker takes one its
  fork server forked ahead: :mod:`flow.execution.forkserver`), then starts every try of the
  batch in one transaction (``queued -> running``, guarded;
  :func:`~flow.execution.task_runner.start_tries`) and sends each started child its try over a
  command pipe; a refused start ends its child before anything ran;
* **run**: the child puts itself in a new process group (so the whole tree the task starts can
  be killed at once), points file descriptors 1 and 2 at the try's log file (output streams to
  disk, a subprocess's output lands there too) and 0 at ``/dev/null``, drops the database
  connections it inherited (``engine.dispose(close=False)``), and runs the task
  (:func:`~flow.execution.task_runner.run_started_try`); what it reads from the metadata
  database (the builtin backend's XComs, the database secrets backend's variables and
  connections) it asks of the supervisor over the same pipes (:mod:`flow.execution.channel`),
  and it connects itself only for another XCom backend, from another thread, or once its
  supervisor is gone;
* **finish**: the child writes the try's end, with the XComs it pushed, as a JSON line on its
  result pipe; the supervisor commits the ends that arrived together in one transaction
  (guarded ``running -> ...``; :func:`~flow.execution.task_runner.finish_tries`), sends the
  final events, and tells a child that has callbacks the committed state.

The supervisor heartbeats its running tries (one transaction per ``heartbeat_interval``) and
stops a try that the database no longer has running. It watches each child through a pidfd
(readable when the child exits, even while a grandchild still holds the child's pipes),
enforces ``execution_timeout`` (``SIGTERM`` to the group at the deadline, ``SIGKILL`` after
``kill_grace`` seconds), kills what is left of the group once the child exits, and, when the
child died without reporting an end (``os._exit``, a signal, the OOM killer), ends the try
itself: one guarded update to ``up_for_retry`` or ``failed``, with the reason appended to the
try's log. (A fork server's children are watched and reaped by the fork server, which says
when one exits.) A child outlives its supervisor: told of its parent's death
(``PR_SET_PDEATHSIG``), it
heartbeats its try itself and commits its own end, so a worker killed under it costs the tries
beside it nothing.

One supervisor runs many children at once; it never starts a thread (it may be forked from), and it
is driven by :meth:`Supervisor.poll`, which waits on every child at once with a selector.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from flow.execution.channel import Lines, SupervisorChannel, write_all
from flow.execution.logs import LOG_FORMAT, log_path
from flow.execution.runtime import TaskInstanceSnapshot
from flow.execution.task_runner import (
    StartedTry,
    StartRequest,
    TryEnd,
    _clears_in_database,
    _xcom_backend,
    find_started_try,
    finish_tries,
    heartbeat_tries,
    hold_stop_requests,
    run_started_try,
    start_tries,
)
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow.scheduling.deps import FOLLOWED_XCOM_KEY
from flow.states import TaskInstanceState as TIS
from flow.utils.timezone import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from flow.execution.forkserver import ForkServer

log = logging.getLogger("flow.supervisor")

# Exit codes of a child; the outcome itself travels over the result pipe.
CHILD_OK, CHILD_TASK_FAILED, CHILD_CRASHED = 0, 1, 70
DEFAULT_KILL_GRACE = 5.0
DEFAULT_SPARES = 4
# A child whose try has ended takes this much lower a priority for its exit: tearing down an
# address space the size of its worker's takes about a millisecond of CPU, which on a busy
# machine would otherwise compete with the commit of its end, the scheduler's next step and
# the next try's start (chain-50's hop on PostgreSQL: about 10% shorter). Not more: under load, a
# child that cannot finish exiting keeps its memory.
EXIT_NICENESS = 5


@dataclass(frozen=True)
class TaskLimits:
    """What a supervisor needs of a task: its ``execution_timeout``, and the delay before a
    retry of a try that died without reporting (``get_retry_delay``). Built from the task, or
    sent as JSON by the fork server that holds the DAG."""

    execution_timeout: timedelta | None = None
    retry_delay: timedelta = timedelta(0)
    retry_exponential_backoff: bool = False
    max_retry_delay: timedelta | None = None

    @classmethod
    def of(cls, task: Any) -> TaskLimits:
        return cls(getattr(task, "execution_timeout", None),
                   getattr(task, "retry_delay", None) or timedelta(0),
                   bool(getattr(task, "retry_exponential_backoff", False)),
                   getattr(task, "max_retry_delay", None))

    def get_retry_delay(self, try_number: int) -> timedelta:
        from flow.authoring.abstractoperator import backoff

        return backoff(self.retry_delay, self.retry_exponential_backoff, self.max_retry_delay,
                       try_number)

    def to_json(self) -> list[Any]:
        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return [seconds(self.execution_timeout), seconds(self.retry_delay),
                self.retry_exponential_backoff, seconds(self.max_retry_delay)]

    @classmethod
    def from_json(cls, data: list[Any]) -> TaskLimits:
        def delta(value: float | None) -> timedelta | None:
            return None if value is None else timedelta(seconds=float(value))

        timeout, delay, exponential, cap = data
        return cls(delta(timeout), delta(delay) or timedelta(0), bool(exponential), delta(cap))


@dataclass
class _Child:
    """A forked child: waiting for its try (a spare: ``workload`` None) or running one."""

    pid: int
    pidfd: int | None  # None: forked by the fork server, which reaps it and says so
    result_fd: int
    command_fd: int | None  # the supervisor's end of the child's command pipe
    version: int = 0  # the fork server's DAGs version a spare was forked under
    workload: TaskWorkload | None = None
    limits: TaskLimits | None = None
    log_path: Path | None = None
    deadline: float | None = None
    timeout: float | None = None
    started: StartedTry | None = None
    end: TryEnd | None = None
    wants_state: bool = False
    max_rss_kb: int = 0
    buffer: bytes = b""
    stop_reason: str | None = None
    kill_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    # Set once its descriptors are closed: one select() can report both the pidfd and the
    # result pipe, and the pipe's callback must not read a closed (or reused) descriptor.
    closed: bool = False


class Supervisor:
    """Forks, starts, watches, ends and, when needed, kills the children that run tries.

    ``on_event`` receives every :class:`TaskEvent`: ``running`` when a try started, then
    exactly one of ``success``, ``failed``, ``up_for_retry``, ``skipped``; or ``refused`` (the
    try was not started) or ``lost`` (it could not be started).

    Children are forked here, one per launch, unless a ``fork_server``
    (:class:`~flow.execution.forkserver.ForkServer`) forks them: then it keeps ``spares``
    children forked ahead, so a launch is a pipe write, and reaps them.
    """

    def __init__(self, *, engine: Engine, plugins: Any, on_event: Callable[[TaskEvent], None],
                 log_folder: str, heartbeat_interval: float | None = None,
                 kill_grace: float = DEFAULT_KILL_GRACE, fork_server: ForkServer | None = None,
                 spares: int = DEFAULT_SPARES) -> None:
        from flow.store.session import is_fork_safe

        self.engine = engine
        self.plugins = plugins
        self.on_event = on_event
        self.log_folder = log_folder
        self.heartbeat_interval = float(heartbeat_interval) if heartbeat_interval else None
        self.kill_grace = kill_grace
        self.selector = selectors.DefaultSelector()
        self.children: dict[TaskKey, _Child] = {}
        # Children whose try has ended (its end committed and sent on) or never started, and
        # that are still exiting: forgotten when their pidfd (or the fork server) says they
        # exited. A new try may start.
        self._exiting: dict[int, _Child] = {}
        self._ending: list[_Child] = []  # ends reported, to commit together
        self._retry_ends_at = 0.0
        self._next_heartbeat = time.monotonic() + (self.heartbeat_interval or 0.0)
        self._extra_fds: set[int] = set()
        self._clears_xcoms = _clears_in_database(_xcom_backend(plugins))
        # What a child forked here takes along. Decided here once: a child that must drop the
        # pool it inherited (an engine not made by flow) does so first thing, and the others
        # need not import anything to know.
        self._context = ChildContext(plugins, self.heartbeat_interval, engine,
                                     disposes=not is_fork_safe(engine))
        self.fork_server = fork_server
        self._spares: list[_Child] = []
        self._spare_count = spares if fork_server is not None else 0
        if fork_server is not None:
            self.selector.register(fork_server.fileno(), selectors.EVENT_READ,
                                   self._from_fork_server)
        _load_prctl()  # here, not in every child

    # --------------------------------------------------------------------------- the caller

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Also wait on ``fd`` in :meth:`poll` and call ``callback`` when it is readable (the
        fd is closed in each forked child)."""
        self.selector.register(fd, selectors.EVENT_READ, callback)
        self._extra_fds.add(fd)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)
        self._extra_fds.discard(fd)

    def stop_keeping_spares(self) -> None:
        self._spare_count = 0
        for spare in list(self._spares):
            self._discard_spare(spare)

    @property
    def running(self) -> int:
        """Children not reaped yet (including those whose try already ended)."""
        return len(self.children) + len(self._exiting)

    @property
    def fork_server_lost(self) -> bool:
        """Whether the fork server died: no try can start here any more."""
        return self.fork_server is not None and not self.fork_server.alive

    def launch(self, workload: TaskWorkload, dag: Any) -> None:
        """Run ``workload``, whose DAG the caller loaded, in a child forked here."""
        self.launch_many([(workload, TaskLimits.of(dag.get_task(workload.task_id)))],
                         find_dag=lambda _workload: dag)

    def launch_many(self, items: list[tuple[TaskWorkload, TaskLimits]],
                    find_dag: Callable[[TaskWorkload], Any] | None = None) -> None:
        """Run each workload in its own child; their tries start in one transaction. A
        second launch of a key already running here is refused without touching the
        database. The children come from the fork server (which holds the DAGs), or are forked
        here and find their DAG with ``find_dag``."""
        batch: list[_Child] = []
        if self.fork_server is not None:
            self._top_up(len(items))
        for workload, limits in items:
            key = workload.key
            running = self.children.get(key)
            if running is not None:
                assert running.workload is not None
                self.on_event(TaskEvent(key, "refused", workload.try_number, {
                    "message": f"refused to start try {workload.try_number}: try "
                               f"{running.workload.try_number} of this task instance is "
                               "already running here (a duplicate submit)"}))
                continue
            child = self._new_child(find_dag)
            if child is None:
                self.on_event(TaskEvent(key, "lost", workload.try_number, {
                    "reason": "the fork server of this worker died: the try was not started"}))
                continue
            timeout = limits.execution_timeout
            seconds = timeout.total_seconds() if timeout is not None else None
            child.workload, child.limits, child.timeout = workload, limits, seconds
            child.deadline = time.monotonic() + seconds if seconds is not None else None
            child.log_path = log_path(self.log_folder, workload.dag_id, workload.run_id,
                                      workload.task_id, workload.map_index,
                                      workload.try_number)
            self.children[key] = child
            batch.append(child)
        if batch:
            self._start(batch)

    def _start(self, batch: list[_Child]) -> None:
        requests = [StartRequest(w.dag_id, w.run_id, w.task_id, w.map_index, w.try_number,
                                 child.pid)
                    for child in batch if (w := child.workload) is not None]
        # Each child learns its workload before the start commits, so that if this process
        # dies between the commit and the go below, the child can ask the database.
        for child in batch:
            assert child.workload is not None
            # The workload's fields as they are: checked here already, not again in the child.
            self._send(child, {"workload": vars(child.workload), "deadline": child.deadline,
                               "log": str(child.log_path)})
        try:
            results = start_tries(self.engine, requests, clear_xcoms=self._clears_xcoms)
        except Exception as err:
            log.exception("could not start %d tries", len(batch))
            for child in batch:
                self._release(child, "lost", {"reason": f"the try could not be started: "
                                                        f"{type(err).__name__}: {err}"})
            return
        for child, (started, refusal) in zip(batch, results, strict=True):
            workload = child.workload
            assert workload is not None
            if started is None or refusal:
                self._release(child, "refused", {"message": refusal})
                continue
            child.started = started
            self._send(child, {"started": started.to_json()})
            self.on_event(TaskEvent(workload.key, TIS.RUNNING, workload.try_number,
                                    {"pid": child.pid}))
            self.plugins.task_instance_state_changed(
                TaskInstanceSnapshot(workload.dag_id, workload.run_id, workload.task_id,
                                     workload.map_index, workload.try_number, TIS.RUNNING),
                TIS.QUEUED, TIS.RUNNING)

    def _send(self, child: _Child, message: dict[str, Any]) -> None:
        if child.command_fd is None:
            return
        with contextlib.suppress(OSError):  # a dead child reports through its pidfd
            write_all(child.command_fd, (json.dumps(message) + "\n").encode())

    def _close_command(self, child: _Child) -> None:
        if child.command_fd is not None:
            with contextlib.suppress(OSError):
                os.close(child.command_fd)
            child.command_fd = None

    def _release(self, child: _Child, state: str, info: dict[str, Any]) -> None:
        """End a child whose try did not start (its command pipe closes: it exits)."""
        workload = child.workload
        assert workload is not None
        self._close_command(child)
        if self.children.get(workload.key) is child:
            del self.children[workload.key]
        if not child.closed:
            self._exiting[child.pid] = child
        self.on_event(TaskEvent(workload.key, state, workload.try_number, info))

    def _new_child(self, find_dag: Callable[[TaskWorkload], Any] | None) -> _Child | None:
        """A child waiting for its try: a spare of the fork server (waiting for one to arrive
        if none is here yet; None once the server is gone), or forked here."""
        server = self.fork_server
        if server is None:
            assert find_dag is not None
            return self._fork_waiting(find_dag)
        while True:
            spare = self._take_spare()
            if spare is not None or not server.alive:
                return spare
            if any(spare.version > server.version for spare in self._spares):
                server.loaded(block=True)  # forked after a DAG import whose answer is due
                continue
            if server.outstanding == 0:
                server.fork(1)
            self._from_fork_server(block=True)

    def _fork_waiting(self, find_dag: Callable[[TaskWorkload], Any]) -> _Child:
        """Fork a child here that waits on its command pipe for the try to run."""
        pid, result_fd, command_fd = fork_waiting(self._context, find_dag,
                                                  self._inherited_fds)
        child = _Child(pid, os.pidfd_open(pid), result_fd, command_fd)
        assert child.pidfd is not None
        self.selector.register(child.pidfd, selectors.EVENT_READ, lambda: self._exited(child))
        self.selector.register(result_fd, selectors.EVENT_READ, lambda: self._read(child))
        return child

    def _inherited_fds(self) -> set[int]:
        """This process's descriptors that a child forked here closes first."""
        fds = set(self._extra_fds)
        children = [*self.children.values(), *self._exiting.values(), *self._ending]
        for child in children:
            if child.closed:  # its numbers may belong to new descriptors by now
                continue
            fds.update(fd for fd in (child.pidfd, child.result_fd, child.command_fd)
                       if fd is not None)
        with contextlib.suppress(Exception):
            fds.add(self.selector.fileno())
        return fds

    # ------------------------------------------------------------------- the fork server

    def _from_fork_server(self, block: bool = False) -> None:
        """Take what the fork server sent: spares (kept), and the exits of children it reaped
        (handled as they would be here)."""
        server = self.fork_server
        assert server is not None
        for message in server.receive(block=block):
            if message.spare is not None:
                pid, version, result_fd, command_fd = message.spare
                spare = _Child(pid, None, result_fd, command_fd, version)
                self.selector.register(result_fd, selectors.EVENT_READ,
                                       lambda spare=spare: self._read(spare))
                self._spares.append(spare)
            for pid, status, max_rss_kb in message.exited:
                child = self._child_of(pid)
                if child is not None and not child.closed:
                    self._drain(child)
                    self._reaped(child, status, max_rss_kb)
        if not server.alive:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(server.fileno())
            log.error("the fork server of this worker (pid %d) died; running tries end "
                      "themselves", server.pid)
        self._discard_stale_spares()
        self._top_up()

    def _child_of(self, pid: int) -> _Child | None:
        child = self._exiting.get(pid)
        if child is not None:
            return child
        return next((c for c in [*self.children.values(), *self._spares] if c.pid == pid),
                    None)

    def _take_spare(self) -> _Child | None:
        """A spare holding the DAGs at the version the caller knows, if one is here."""
        self._discard_stale_spares()
        version = self.fork_server.version if self.fork_server is not None else 0
        for spare in self._spares:
            if spare.version == version:
                self._spares.remove(spare)
                return spare
        return None

    def _discard_stale_spares(self) -> None:
        """End the spares forked before the fork server's last DAG import."""
        if self.fork_server is None:
            return
        version = self.fork_server.version
        for spare in [s for s in self._spares if s.version < version]:
            self._discard_spare(spare)

    def _top_up(self, launching: int = 0) -> None:
        """Ask the fork server for the children ``launching`` tries need beyond the spares
        here, and for enough more to keep ``spares`` of them waiting."""
        server = self.fork_server
        if server is None or not server.alive:
            return
        # A spare of a newer version is usable once the answer of its DAG import is read.
        usable = sum(1 for spare in self._spares if spare.version >= server.version)
        missing = launching + self._spare_count - usable - server.outstanding
        if missing > 0:
            server.fork(missing)

    def _discard_spare(self, spare: _Child) -> None:
        """End a spare: its command pipe closes, so it exits (the fork server reaps it)."""
        if spare in self._spares:
            self._spares.remove(spare)
        if not spare.closed:
            self._close(spare)

    # -------------------------------------------------------------------- stop, and poll

    def cancel(self, key: TaskKey, reason: str = "cancelled") -> bool:
        """Stop the try running ``key``: ``SIGTERM`` to its group, ``SIGKILL`` after the grace
        period. False if no such try runs here."""
        child = self.children.get(key)
        if child is None:
            return False
        self._terminate(child, reason)
        return True

    def terminate_all(self, reason: str) -> None:
        for child in list(self.children.values()):
            self._terminate(child, reason)

    def poll(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: until something happens) for a child to
        report or exit, or a watched fd to be readable; handle it, commit the tries' ends that
        arrived, and handle every due deadline and heartbeat. False when nothing was there to
        handle."""
        due = self._next_deadline()
        if due is not None:
            wait = max(0.0, due - time.monotonic())
            timeout = wait if timeout is None else min(timeout, wait)
        ready = self.selector.select(timeout)
        for key, _ in ready:
            key.data()
        self._commit_ends()
        self._enforce_deadlines()
        self._heartbeat()
        return bool(ready)

    def close(self) -> None:
        self.stop_keeping_spares()
        if self.fork_server is not None:
            self.fork_server.close(graceful=not self.running)
        self.selector.close()

    # --------------------------------------------------------------------------- the parent

    def _read(self, child: _Child) -> None:
        if child.closed:
            return
        try:
            data = os.read(child.result_fd, 65536)
        except BlockingIOError:
            return
        if not data:  # closed; the pidfd tells when the child is gone
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(child.result_fd)
            return
        self._consume(child, data)

    def _drain(self, child: _Child) -> None:
        """Read what the exited child wrote; stop at an empty pipe even if a grandchild
        still holds it open."""
        while True:
            try:
                data = os.read(child.result_fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._consume(child, data)

    def _consume(self, child: _Child, data: bytes) -> None:
        child.buffer += data
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            self._message(child, line)

    def _message(self, child: _Child, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return  # a task that wrote to an inherited fd by accident: not ours
        if isinstance(message, dict) and "request" in message:
            self._answer(child, message)
            return
        if not isinstance(message, dict) or "end" not in message:
            return
        if child.started is None or child.end is not None:
            return
        try:
            child.end = TryEnd.from_json(message["end"])
        except (TypeError, ValueError):
            return
        child.wants_state = bool(message.get("wants_state"))
        child.max_rss_kb = int(message.get("max_rss_kb") or 0)
        self._ending.append(child)

    def _answer(self, child: _Child, message: dict[str, Any]) -> None:
        """Answer a running try's request (see :mod:`flow.execution.channel`) from this
        process's connection."""
        if child.started is None or child.command_fd is None:
            return  # not running a try (nor its callbacks): it is told nothing
        op = message.get("request")
        try:
            value: Any
            if op == "xcom_get":
                value = self._xcom_records(message)
            elif op in ("variable_get", "connection_get"):
                value = self._secret(op, message)
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as err:
            log.warning("could not answer %s of %s: %s", op, child.workload, err)
            self._send(child, {"error": f"{type(err).__name__}: {err}"})
            return
        self._send(child, {"value": value})

    def _secret(self, op: str, message: dict[str, Any]) -> Any:
        """A variable's stored text, or a connection with its secrets (decrypted: the try
        asked the database backend for it), from the metadata database."""
        from flow.secrets.database import load_connection, load_variable
        from flow.store.session import session_scope

        with session_scope(self.engine) as session:
            if op == "variable_get":
                return load_variable(str(message["key"]), session=session)
            found = load_connection(str(message["conn_id"]), session=session)
            return None if found is None else found.to_dict(reveal=True)

    def _xcom_records(self, message: dict[str, Any]) -> list[list[Any]]:
        """``[[task_id, map_index, stored text], ...]`` of the XComs a try asked for, in the
        backend's order (the try deserializes them)."""
        from flow.execution.xcom import DatabaseXComBackend, stored_xcoms
        from flow.store.session import session_scope

        backend = _xcom_backend(self.plugins)
        indexes = message.get("map_indexes")
        where: dict[str, Any] = {
            "dag_id": str(message["dag_id"]), "run_id": str(message["run_id"]),
            "task_ids": [str(t) for t in message["task_ids"]], "key": str(message["key"]),
            "map_indexes": None if indexes is None else [int(i) for i in indexes]}
        if type(backend).get_many is DatabaseXComBackend.get_many:  # the rows as stored
            with self.engine.connect() as connection:
                return [[row.task_id, row.map_index, row.value]
                        for row in stored_xcoms(connection, **where)]
        with session_scope(self.engine) as session:
            records = backend.get_many(session=session, **where)
        return [[record.task_id, record.map_index, backend.serialize(record.value)]
                for record in records]

    def _commit_ends(self) -> None:
        """Commit the ends that arrived, in one transaction; then send their final events
        and tell the children that wait for it the committed state."""
        if not self._ending or time.monotonic() < self._retry_ends_at:
            return
        ending, self._ending = self._ending, []
        try:
            results = finish_tries(self.engine, [
                (child.started.row, child.started.row.try_number, child.end)
                for child in ending if child.started is not None and child.end is not None])
        except Exception:
            log.exception("could not record the end of %d tries; trying again in 1 s",
                          len(ending))
            self._ending = ending + self._ending
            self._retry_ends_at = time.monotonic() + 1.0
            return
        for child, ended in zip(ending, results, strict=True):
            workload, end = child.workload, child.end
            assert workload is not None and end is not None
            if child.wants_state:
                # Its callbacks run now: its requests are answered until it exits.
                self._send(child, {"state": ended.state if ended.committed else TIS.RUNNING})
            else:
                self._close_command(child)
            if self.children.get(workload.key) is child:
                del self.children[workload.key]
            if not child.closed:
                self._exiting[child.pid] = child
            info: dict[str, Any] = {"max_rss_kb": child.max_rss_kb,
                                    "log_path": str(child.log_path)}
            if end.error:
                info["error"] = end.error
            if not ended.committed:
                # Someone else (zombie detection, a user marking it) ended the try first.
                state = ended.state if ended.state not in (None, TIS.QUEUED) else "lost"
                info["message"] = "state changed by someone else while running"
                self.on_event(TaskEvent(workload.key, str(state), workload.try_number, info))
                continue
            state = end.state
            if self._clears_xcoms:  # the try's XComs came with its end: all of them are here
                info["branch_decision"] = FOLLOWED_XCOM_KEY in end.xcoms
            self.on_event(TaskEvent(workload.key, state, workload.try_number, info))
            self.plugins.task_instance_state_changed(
                TaskInstanceSnapshot(workload.dag_id, workload.run_id, workload.task_id,
                                     workload.map_index, workload.try_number, state),
                TIS.RUNNING, state)

    def _exited(self, child: _Child) -> None:
        """A child forked here exited (its pidfd says so): reap it."""
        if child.closed:
            return
        self._drain(child)
        # Whatever the task left behind in its group dies with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        _, status, usage = os.wait4(child.pid, 0)
        self._reaped(child, status, usage.ru_maxrss)

    def _reaped(self, child: _Child, status: int, max_rss_kb: int) -> None:
        """A child is gone (reaped here or by the fork server): forget it, and end its try if
        it died without reporting."""
        self._close(child)
        if child.workload is None:  # a spare
            if child in self._spares:
                self._spares.remove(child)
            return
        if self._exiting.pop(child.pid, None) is not None or child.end is not None:
            return  # ended (or never started); an end waiting for its commit is sent then
        del self.children[child.workload.key]
        self.on_event(self._death_event(child, status, max_rss_kb))

    def _close(self, child: _Child) -> None:
        child.closed = True
        self._close_command(child)
        for fd in (child.pidfd, child.result_fd):
            if fd is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _death_event(self, child: _Child, status: int, max_rss_kb: int) -> TaskEvent:
        """The final event of a started try whose process died without reporting its end,
        after ending the try in the database."""
        workload = child.workload
        assert workload is not None
        info: dict[str, Any] = {"max_rss_kb": max_rss_kb, "log_path": str(child.log_path),
                                "exit": describe_status(status)}
        reason = self._death_reason(child, status)
        info["reason"] = reason
        state = end_dead_try(self.engine, workload, reason, child.limits, self.plugins)
        if state is None:  # never started: nothing ran, the scheduler decides what to do
            return TaskEvent(workload.key, "lost", workload.try_number, info)
        assert child.log_path is not None
        append_to_log(child.log_path, reason)
        return TaskEvent(workload.key, state, workload.try_number, info)

    def _death_reason(self, child: _Child, status: int) -> str:
        how = describe_status(status)
        if child.stop_reason == "timeout":
            return (f"execution_timeout of {child.timeout:g} seconds exceeded: the task "
                    f"process group was terminated and the task {how} without reporting")
        if child.stop_reason is not None:
            return f"the task was stopped ({child.stop_reason}) and {how} without reporting"
        return f"the task process {how} without reporting a state (it crashed or was killed)"

    def _terminate(self, child: _Child, reason: str) -> None:
        if child.stop_reason is not None:
            return
        child.stop_reason = reason
        child.kill_at = time.monotonic() + self.kill_grace
        log.info("stopping %s (%s): SIGTERM to process group %d", child.workload, reason,
                 child.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)

    def _next_deadline(self) -> float | None:
        times = [t for child in self.children.values()
                 for t in (child.kill_at, None if child.stop_reason else child.deadline)
                 if t is not None]
        if self.heartbeat_interval and self.children:
            times.append(self._next_heartbeat)
        if self._ending:
            times.append(self._retry_ends_at)
        return min(times) if times else None

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.end is not None:
                continue
            if child.stop_reason is None and child.deadline is not None and now >= child.deadline:
                self._terminate(child, "timeout")
            elif child.kill_at is not None and now >= child.kill_at:
                child.kill_at = None
                log.warning("%s did not stop within %g seconds: SIGKILL to process group %d",
                            child.workload, self.kill_grace, child.pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)

    def _heartbeat(self) -> None:
        """Heartbeat the running tries, in one transaction; stop those the database no longer
        has running."""
        now = time.monotonic()
        if not self.heartbeat_interval or now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.heartbeat_interval
        beating = [child for child in self.children.values()
                   if child.started is not None and child.end is None]
        if not beating:
            return
        try:
            alive = heartbeat_tries(self.engine, [
                (child.started.row.id, child.started.row.try_number)
                for child in beating if child.started is not None])
        except Exception as err:  # a database hiccup: the next beat may succeed
            log.warning("heartbeat of %d tries failed: %s", len(beating), err)
            return
        for child, running in zip(beating, alive, strict=True):
            if not running and child.end is None:
                log.error("%s try %s is no longer running in the database (its state was "
                          "changed elsewhere): stopping the task", child.workload,
                          child.workload.try_number if child.workload else "?")
                self._terminate(child, "its try was ended elsewhere")


# ------------------------------------------------------------------------------ the child


@dataclass
class ChildContext:
    """What a forked try's process takes from the process it was forked from."""

    plugins: Any
    heartbeat_interval: float | None
    # None: the child has no engine of its parent (a fork server's children) and makes one
    # the first time it needs the database itself, which most tries never do.
    engine: Engine | None = None
    disposes: bool = False  # drop the inherited pool first (an engine not made by flow)
    parent_pid: int = field(default_factory=os.getpid)

    def get_engine(self) -> Engine:
        if self.engine is None:
            from flow.store.session import get_engine

            self.engine = get_engine()
        return self.engine


def fork_waiting(context: ChildContext, find_dag: Callable[[TaskWorkload], Any],
                 inherited_fds: Callable[[], set[int]]) -> tuple[int, int, int]:
    """Fork a child that sets itself up (closing ``inherited_fds()``) and waits on its command
    pipe for its try (see :class:`Supervisor`), and finds the try's DAG with ``find_dag``.
    Returns its pid, the non-blocking read end of its result pipe and the write end of its
    command pipe."""
    result_read, result_write = os.pipe()
    command_read, command_write = os.pipe()

    def setup() -> None:
        os.close(result_read)
        os.close(command_write)
        _child_setup(context, inherited_fds() - {result_write, command_read})

    pid = _fork_child(setup, lambda: _child_wait(context, command_read, result_write, find_dag))
    os.close(result_write)
    os.close(command_read)
    with contextlib.suppress(OSError):  # the child may have done it, or already exited
        os.setpgid(pid, pid)
    os.set_blocking(result_read, False)
    return pid, result_read, command_write


def fork_spare(context: ChildContext, find_dag: Callable[[TaskWorkload], Any],
               inherited_fds: Callable[[], set[int]], channel: socket.socket,
               version: int) -> int:
    """Fork a child like :func:`fork_waiting`'s that makes its pipes itself once it is set up,
    and hands their supervisor's ends over on ``channel`` (a ``SOCK_SEQPACKET`` socket):
    ``{"spare": pid, "version": version}`` with the read end of its result pipe (non-blocking)
    and the write end of its command pipe (``SCM_RIGHTS``). Returns the child's pid.

    The forking process does nothing more per child than the fork, and creates no object for
    it: after a fork every page it writes is copied (its children share them), and a fork
    server forks a child per try. Nothing can stop the child before it is set up (nobody
    knows it yet), so ``SIGTERM`` needs no blocking across this fork."""
    _flush_standard_streams()
    pid = os.fork()
    if pid == 0:
        _child_main(None, _spare_setup, (context, inherited_fds, channel),
                    _hand_over_and_wait, (context, find_dag, channel, version))
    return pid


def _spare_setup(context: ChildContext, inherited_fds: Callable[[], set[int]],
                 channel: socket.socket) -> None:
    _child_setup(context, inherited_fds() - {channel.fileno()})


def _hand_over_and_wait(context: ChildContext, find_dag: Callable[[TaskWorkload], Any],
                        channel: socket.socket, version: int) -> None:
    result_read, result_write = os.pipe()
    command_read, command_write = os.pipe()
    os.set_blocking(result_read, False)
    message = b'{"spare": %d, "version": %d}' % (os.getpid(), version)
    try:
        socket.send_fds(channel, [message], [result_read, command_write])
    except OSError:  # its supervisor is gone: nothing will come
        return
    finally:
        os.close(result_read)
        os.close(command_write)
        channel.close()
    _child_wait(context, command_read, result_write, find_dag)


def _fork_child(setup: Callable[[], None], run: Callable[[], None]) -> int:
    """Fork a child that runs ``setup`` (with ``SIGTERM`` blocked), then ``run``, and exits;
    returns its pid."""
    _flush_standard_streams()
    # A stop (SIGTERM to the child's group) may come as soon as the child is handed over,
    # before its setup holds stop requests: blocked until then, it is held, not fatal.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid == 0:
        _child_main(mask, setup, (), run, ())
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _flush_standard_streams() -> None:
    """Before a fork: or the child writes what the parent's buffers hold too."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _child_main(mask: set[signal.Signals] | None, setup: Callable[..., None],
                setup_args: tuple[Any, ...], run: Callable[..., None],
                run_args: tuple[Any, ...]) -> NoReturn:
    """A forked child's life: ``setup(*setup_args)``, the signal mask back to ``mask`` (when
    the fork blocked signals), ``run(*run_args)``, and its exit."""
    code = CHILD_CRASHED
    try:
        setup(*setup_args)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        run(*run_args)
        code = CHILD_OK
    except BaseException:
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
    finally:
        _flush_standard_streams()
        with contextlib.suppress(OSError):
            os.nice(EXIT_NICENESS)
        os._exit(code)


def _child_setup(context: ChildContext, inherited_fds: set[int]) -> None:
    """What a child does first, before its try is known."""
    # What the child inherited is never garbage here: keep the collector off it, so it
    # neither spends time on it nor copies its pages by touching them.
    gc.freeze()
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)  # a fork server's: the child's signals are its own
    for signum in (signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    hold_stop_requests()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in inherited_fds - {0, 1, 2}:
        with contextlib.suppress(OSError):
            os.close(fd)
    # Standard input is /dev/null from here on, not the caller's (a worker reads its
    # commands there), and never a free slot a database socket could take: the log
    # redirection later replaces descriptors 0, 1 and 2.
    null_fd = os.open(os.devnull, os.O_RDONLY)
    if null_fd != 0:
        os.dup2(null_fd, 0)
        os.close(null_fd)
    if context.disposes and context.engine is not None:  # else its pool drops inherited
        context.engine.dispose(close=False)            # connections itself


def _child_wait(context: ChildContext, command_fd: int, result_fd: int,
                find_dag: Callable[[TaskWorkload], Any]) -> None:
    """In the child: wait for the started try, run it, report its end."""
    commands = Lines(command_fd)
    command = commands.next()
    if command is None:
        os._exit(CHILD_OK)  # not needed: a discarded spare
    workload = TaskWorkload(**command["workload"])
    go = commands.next()
    if go is not None:
        started = StartedTry.from_json(go["started"])
    else:  # refused, or the supervisor died: the database says whether it started
        found = find_started_try(context.get_engine(), StartRequest(
            workload.dag_id, workload.run_id, workload.task_id, workload.map_index,
            workload.try_number, os.getpid()))
        if found is None:
            os._exit(CHILD_OK)
        started = found
    orphan = _Orphanhood(context, started)
    path = command["log"]
    _redirect_output(path)
    # Database reads go through the supervisor while it listens (see channel).
    channel = SupervisorChannel(result_fd, commands)
    channel.install()

    def report(end: TryEnd, wants_state: bool) -> str | None:
        channel.close()
        orphan.ending()
        message = {"end": end.to_json(), "wants_state": wants_state,
                   "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        if not orphan.orphaned:
            previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            try:
                write_all(result_fd, (json.dumps(message) + "\n").encode())
            except OSError:  # the supervisor is gone
                orphan.orphaned = True
            finally:
                signal.signal(signal.SIGPIPE, previous)
        if not orphan.orphaned:
            if not wants_state:
                return None
            answer = commands.next()
            while answer is not None and "state" not in answer:  # a cut-short request's
                answer = commands.next()
            if answer is not None:
                channel.open = True  # the callbacks' requests are answered too
                return str(answer.get("state"))
        return orphan.finish(end, context.plugins)

    dag = find_dag(workload)
    if dag is None or workload.task_id not in dag.task_dict:
        message = (f"DAG {workload.dag_id!r} with task {workload.task_id!r} was not found "
                   "again in the task's process")
        append_to_log(Path(path), message)
        report(TryEnd(TIS.FAILED, message), False)
        return
    # The log on a descriptor of its own: a task that points 1 elsewhere keeps it whole.
    with open(os.dup(1), "a", encoding="utf-8") as output:
        run_started_try(dag, started, engine=context.engine, plugins=context.plugins,
                        deadline=command["deadline"], path=path, report=report,
                        channel=channel, output=output)


_prctl: list[Any] = []
PR_SET_PDEATHSIG = 1
ORPHANED_SIGNAL = signal.SIGUSR2


def _load_prctl() -> None:
    if not _prctl:
        import ctypes

        _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)


def set_death_signal(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies
    (``PR_SET_PDEATHSIG``)."""
    _load_prctl()
    _prctl[0](PR_SET_PDEATHSIG, signum)


class _Orphanhood:
    """In a child running a try: what it does when its supervisor dies (a task killed its
    worker, or the OOM killer did). The kernel tells it with ``SIGUSR2``
    (``PR_SET_PDEATHSIG``); from then on the child heartbeats its try from a thread, and
    commits its end itself."""

    def __init__(self, context: ChildContext, started: StartedTry) -> None:
        self.context = context
        self.interval = context.heartbeat_interval
        self.started = started
        self.orphaned = False
        self._ended = False
        self._stop: Any = None
        signal.signal(ORPHANED_SIGNAL, self._on_orphaned)
        set_death_signal(ORPHANED_SIGNAL)
        if os.getppid() != context.parent_pid:  # it died before the call
            self._on_orphaned()

    def _on_orphaned(self, *_: Any) -> None:
        if self.orphaned:
            return
        self.orphaned = True
        if self._ended or not self.interval:
            return
        import threading

        self._stop = threading.Event()
        threading.Thread(target=self._beat, name="flow-orphan-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        row = self.started.row
        while not self._stop.wait(self.interval):
            try:
                [alive] = heartbeat_tries(self.context.get_engine(),
                                          [(row.id, row.try_number)])
            except Exception as err:  # a database hiccup: the next beat may succeed
                log.warning("heartbeat failed: %s", err)
                continue
            if not alive and not self._ended:
                log.error("try %d is no longer running in the database (its state was changed "
                          "elsewhere): stopping the task", row.try_number)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def ending(self) -> None:
        self._ended = True
        if self._stop is not None:
            self._stop.set()

    def finish(self, end: TryEnd, plugins: Any) -> str:
        """Commit the try's end here: its supervisor is gone."""
        row = self.started.row
        log.warning("the supervisor of this try is gone: recording its end (%s) from the "
                    "task's own process", end.state)
        [ended] = finish_tries(self.context.get_engine(), [(row, row.try_number, end)])
        if not ended.committed:  # ended elsewhere, or by the supervisor before it died
            return str(ended.state) if ended.state is not None else TIS.RUNNING
        state = end.state
        plugins.task_instance_state_changed(
            TaskInstanceSnapshot(row.dag_id, row.run_id, row.task_id, row.map_index,
                                 row.try_number, state), TIS.RUNNING, state)
        return state


def _redirect_output(path: str) -> None:
    """Point standard output and error at the try's log file (standard input is /dev/null
    since the child's setup). A try's folder is usually new: made here with one ``mkdir``."""
    folder = os.path.dirname(path)
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:  # the run's first try here
        os.makedirs(folder, exist_ok=True)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)


def kill_grace_period(config: Any) -> float:
    """Seconds between ``SIGTERM`` and ``SIGKILL`` when a try is stopped
    (``[core] task_kill_grace_period``)."""
    return float(config.get("core", "task_kill_grace_period"))


def describe_status(status: int) -> str:
    """'exited with code N' or 'was killed by SIGNAME', from a wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def append_to_log(path: Path, message: str, level: str = "ERROR") -> None:
    """Add a line in the task log's format, from outside the task (the supervisor)."""
    record = logging.LogRecord("flow.supervisor", logging.getLevelName(level), __file__, 0,
                               message, None, None)
    line = logging.Formatter(LOG_FORMAT).format(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def append_to_try_log(log_folder: str, workload: TaskWorkload, message: str,
                      level: str = "ERROR") -> None:
    """:func:`append_to_log` for the log of ``workload``'s try, from outside the try (a
    supervisor, the scheduler, an executor that lost it)."""
    key = workload.key
    append_to_log(log_path(log_folder, key.dag_id, key.run_id, key.task_id, key.map_index,
                           workload.try_number), message, level)


def end_dead_try(engine: Engine, workload: TaskWorkload, reason: str, task: Any,
                 plugins: Any) -> str | None:
    """End a try whose process died while running: ``up_for_retry`` while tries remain, else
    ``failed``, guarded by ``state = 'running' AND try_number = N``. Returns the task
    instance's state afterwards (whoever set it), or None if the try never started."""
    from sqlalchemy import select, update

    from flow.secrets.masking import redact
    from flow.store.models import TaskInstance, TaskInstanceTry
    from flow.store.session import session_scope

    key, try_number, now = workload.key, workload.try_number, utcnow()
    with session_scope(engine) as session:
        row = session.execute(select(TaskInstance.id, TaskInstance.state, TaskInstance.try_number,
                                     TaskInstance.max_tries, TaskInstance.start_date)
                              .where(TaskInstance.dag_id == key.dag_id,
                                     TaskInstance.run_id == key.run_id,
                                     TaskInstance.task_id == key.task_id,
                                     TaskInstance.map_index == key.map_index)).one_or_none()
        if row is None:
            return None
        if row.state != TIS.RUNNING or row.try_number != try_number:
            started = row.try_number == try_number and row.state not in {TIS.QUEUED, None}
            return str(row.state) if started else None
        retry = try_number <= row.max_tries
        values: dict[str, Any] = {"state": TIS.UP_FOR_RETRY if retry else TIS.FAILED,
                                  "end_date": now, "updated_at": now,
                                  "duration": _seconds_since(row.start_date, now)}
        if retry:
            delay = getattr(task, "get_retry_delay", None)
            values["next_retry_at"] = now + delay(try_number) if delay else now
        changed = _rowcount(session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == row.id, TaskInstance.state == TIS.RUNNING,
                   TaskInstance.try_number == try_number)
            .values(**values).execution_options(synchronize_session=False)))
        if not changed:
            return str(session.scalar(select(TaskInstance.state)
                                      .where(TaskInstance.id == row.id)))
        session.execute(
            update(TaskInstanceTry)
            .where(TaskInstanceTry.task_instance_id == row.id,
                   TaskInstanceTry.try_number == try_number)
            .values(state=values["state"], end_date=now, duration=values["duration"],
                    error=redact(reason))
            .execution_options(synchronize_session=False))
    state = str(values["state"])
    plugins.task_instance_state_changed(
        TaskInstanceSnapshot(key.dag_id, key.run_id, key.task_id, key.map_index, try_number,
                             state), TIS.RUNNING, state)
    return state


def fail_unstartable(engine: Engine, workload: TaskWorkload, reason: str,
                     log_folder: str, plugins: Any) -> str | None:
    """Fail a queued try that cannot start (its DAG or task is not in the file any more), with
    the reason in its log; guarded by ``state = 'queued' AND try_number = N``, and announced to
    ``plugins``. Returns the new state, or None when the try was not queued (a late or
    duplicate delivery)."""
    from sqlalchemy import update

    from flow.store.models import TaskInstance
    from flow.store.session import session_scope

    key, now = workload.key, utcnow()
    with session_scope(engine) as session:
        changed = _rowcount(session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == key.dag_id, TaskInstance.run_id == key.run_id,
                   TaskInstance.task_id == key.task_id,
                   TaskInstance.map_index == key.map_index, TaskInstance.state == TIS.QUEUED,
                   TaskInstance.try_number == workload.try_number)
            .values(state=TIS.FAILED, start_date=now, end_date=now, duration=0.0,
                    updated_at=now)
            .execution_options(synchronize_session=False)))
    if not changed:
        return None
    append_to_try_log(log_folder, workload, reason)
    plugins.task_instance_state_changed(
        TaskInstanceSnapshot(key.dag_id, key.run_id, key.task_id, key.map_index,
                             workload.try_number, TIS.FAILED), TIS.QUEUED, TIS.FAILED)
    return str(TIS.FAILED)


def _seconds_since(start: datetime | None, now: datetime) -> float | None:
    return (now - start).total_seconds() if start is not None else None


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (typed loosely: the ORM's Result does not declare it)."""
    return int(result.rowcount)
