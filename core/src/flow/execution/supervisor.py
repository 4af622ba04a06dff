"""Supervise tries of task instances: each runs in a forked child in its own process group.

The supervisor (the parent) is what ``flow tasks run`` and every worker of the local executor
run. For each workload it forks a child that:

* puts itself in a new process group, so the whole tree the task starts can be killed at once;
* points file descriptors 1 and 2 at the try's log file (output is streamed to disk, never
  held in memory, and a subprocess's output lands in the log too) and 0 at ``/dev/null``;
* drops the database connections it inherited (``engine.dispose(close=False)``: the parent's
  sockets stay the parent's) and runs :func:`~flow.execution.task_runner.run_task`, which
  heartbeats and turns ``SIGTERM`` into ``TaskTimeout``/``TaskTerminated`` (calling
  ``on_kill``);
* writes JSON lines to a result pipe: one when the try is running, one with the outcome.

The parent watches each child through a pidfd (readable when the child exits, even while a
grandchild still holds the child's pipes), enforces ``execution_timeout`` (``SIGTERM`` to the
group at the deadline, ``SIGKILL`` after ``kill_grace`` seconds), kills what is left of the
group once the child exits, and, when the child died without reporting an outcome (``os._exit``,
a signal, the OOM killer), ends the try itself: one guarded update ``WHERE state = 'running' AND
try_number = N`` to ``up_for_retry`` or ``failed``, with the reason appended to the try's log.
So the scheduler learns of a dead task at once, not after the heartbeat timeout.

The final event of a try is sent as soon as its outcome arrives (its state is committed by
then); the child is reaped when it exits. With :meth:`Supervisor.keep_a_spare` (the local
worker), the next child is forked while the supervisor is idle and waits, set up and connected
to the database, for its workload on a pipe.

One supervisor runs many children at once; it never starts a thread (it is forked from), and it
is driven by :meth:`Supervisor.poll`, which waits on every child at once with a selector.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from flow.execution.logs import LOG_FORMAT, log_path
from flow.execution.runtime import TaskInstanceSnapshot
from flow.execution.task_runner import Supervision, run_task
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow.states import TaskInstanceState as TIS
from flow.store.models import TaskInstance, TaskInstanceTry
from flow.utils.timezone import utcnow

log = logging.getLogger("flow.supervisor")

# Exit codes of a child; the outcome itself travels over the result pipe.
CHILD_OK, CHILD_TASK_FAILED, CHILD_CRASHED = 0, 1, 70
DEFAULT_KILL_GRACE = 5.0


@dataclass
class _Child:
    workload: TaskWorkload
    task: Any
    pid: int
    pidfd: int
    result_fd: int
    log_path: Path
    deadline: float | None
    timeout: float | None
    buffer: bytes = b""
    outcome: dict[str, Any] | None = None
    stop_reason: str | None = None
    kill_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    # Set once its descriptors are closed: one select() can report both the pidfd and the
    # result pipe, and the pipe's callback must not read a closed (or reused) descriptor.
    closed: bool = False


@dataclass
class _Spare:
    """A child forked ahead of its workload, waiting for it on ``command_fd``."""

    pid: int
    pidfd: int
    command_fd: int
    result_fd: int
    version: object


class Supervisor:
    """Forks, watches and, when needed, kills the children that run tries.

    ``on_event`` receives every :class:`TaskEvent`: ``running`` when a try started, then
    exactly one of ``success``, ``failed``, ``up_for_retry``, ``skipped`` or ``refused``.
    """

    def __init__(self, *, engine: Engine, plugins: Any, on_event: Callable[[TaskEvent], None],
                 log_folder: str, heartbeat_interval: float | None = None,
                 kill_grace: float = DEFAULT_KILL_GRACE) -> None:
        self.engine = engine
        self.plugins = plugins
        self.on_event = on_event
        self.log_folder = log_folder
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace = kill_grace
        self.selector = selectors.DefaultSelector()
        self.children: dict[TaskKey, _Child] = {}
        # Children whose try has reported its outcome (already sent on) and that are still
        # exiting: reaped when their pidfd says so. A new try of the same key may start.
        self._exiting: dict[int, _Child] = {}
        self._extra_fds: set[int] = set()
        self._spare: _Spare | None = None
        self._find_dag: Callable[[TaskWorkload], Any] | None = None
        self._dags_version: Callable[[], object] = lambda: None
        self._spare_died = False  # unused: fork the next one after a launch, not in a loop

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

    def keep_a_spare(self, find_dag: Callable[[TaskWorkload], Any],
                     dags_version: Callable[[], object]) -> None:
        """Keep one child forked ahead of its workload while idle, so a launch costs a pipe
        write instead of a fork and the child's setup (process group, signals, a database
        connection). ``find_dag(workload)`` returns the workload's DAG in that child (None: not
        found); ``dags_version()`` changes whenever the DAGs the caller holds do: a spare
        forked under another version is not used."""
        self._find_dag, self._dags_version = find_dag, dags_version

    def stop_keeping_a_spare(self) -> None:
        self._find_dag = None
        if self._spare is not None:
            self._discard_spare(self._spare)

    @property
    def running(self) -> int:
        """Children not reaped yet (including those whose try already ended)."""
        return len(self.children) + len(self._exiting)

    def launch(self, workload: TaskWorkload, dag: Any) -> None:
        """Fork a child running ``workload`` (whose DAG the caller loaded). A second launch of
        a key already running here is refused without touching the database."""
        key = workload.key
        if key in self.children:
            self.on_event(TaskEvent(key, "refused", workload.try_number, {
                "message": f"refused to start try {workload.try_number}: try "
                           f"{self.children[key].workload.try_number} of this task instance is "
                           "already running here (a duplicate submit)"}))
            return
        task = dag.get_task(workload.task_id)
        timeout = getattr(task, "execution_timeout", None)
        seconds = timeout.total_seconds() if timeout is not None else None
        deadline = time.monotonic() + seconds if seconds is not None else None
        path = log_path(self.log_folder, workload.dag_id, workload.run_id, workload.task_id,
                        workload.map_index, workload.try_number)
        spare = self._take_spare()
        self._spare_died = False
        if spare is not None:
            pid, pidfd, read_end = spare.pid, spare.pidfd, spare.result_fd
            command = {"workload": workload.to_json(), "deadline": deadline, "log": str(path)}
            with contextlib.suppress(OSError):  # a dead spare reports through the pidfd
                os.write(spare.command_fd, (json.dumps(command) + "\n").encode())
            os.close(spare.command_fd)
            self.selector.unregister(pidfd)
        else:
            pid, read_end = self._fork(lambda result_fd: self._child_run(
                workload, dag, result_fd, path, deadline))
            pidfd = os.pidfd_open(pid)
        child = _Child(workload, task, pid, pidfd, read_end, path, deadline, seconds)
        self.children[key] = child
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._exited(child))
        self.selector.register(read_end, selectors.EVENT_READ, lambda: self._read(child))

    def _fork(self, body: Callable[[int], None]) -> tuple[int, int]:
        """Fork a child that sets itself up and runs ``body(result_fd)``; returns its pid and
        the (non-blocking) read end of its result pipe."""
        read_end, write_end = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # or the child writes the parent's buffer too
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(read_end)
            code = CHILD_CRASHED
            try:
                self._child_setup()
                body(write_end)
            except BaseException:
                with contextlib.suppress(Exception):
                    import traceback

                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        with contextlib.suppress(OSError):  # the child may have done it, or already exited
            os.setpgid(pid, pid)
        os.set_blocking(read_end, False)
        return pid, read_end

    # ---------------------------------------------------------------------------- the spare

    def _take_spare(self) -> _Spare | None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.version != self._dags_version():
            self._discard_spare(spare)
            return None
        return spare

    def _fork_spare(self) -> None:
        command_read, command_write = os.pipe()
        version = self._dags_version()

        def wait_for_workload(result_fd: int) -> None:
            os.close(command_write)
            self._spare_run(command_read, result_fd)

        pid, result_fd = self._fork(wait_for_workload)
        os.close(command_read)
        pidfd = os.pidfd_open(pid)
        spare = self._spare = _Spare(pid, pidfd, command_write, result_fd, version)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._spare_exited(spare))

    def _spare_exited(self, spare: _Spare) -> None:
        self._spare_died = True
        self._discard_spare(spare)

    def _discard_spare(self, spare: _Spare) -> None:
        """End a spare (its command pipe closes: it exits) and reap it."""
        if self._spare is spare:
            self._spare = None
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(spare.pidfd)
        for fd in (spare.command_fd, spare.result_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(spare.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)
        os.close(spare.pidfd)

    def _spare_run(self, command_fd: int, result_fd: int) -> None:
        """In the spare: connect to the database now, then wait for the workload."""
        with contextlib.suppress(Exception), self.engine.connect():
            pass  # the connection stays in this child's pool for the try (if it fails, the
            # try's own connection reports the problem)
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(command_fd, 65536)
            if not chunk:
                os._exit(CHILD_OK)  # discarded before it was used
            data += chunk
        os.close(command_fd)
        command = json.loads(data)
        workload = TaskWorkload.from_json(command["workload"])
        assert self._find_dag is not None
        dag = self._find_dag(workload)
        if dag is None:
            message = (f"DAG {workload.dag_id!r} with task {workload.task_id!r} was not found "
                       "again in the task's process")
            os.write(result_fd, (json.dumps({"started": False, "state": None,
                                              "message": message}) + "\n").encode())
            os._exit(CHILD_TASK_FAILED)
        self._child_run(workload, dag, result_fd, Path(command["log"]), command["deadline"])

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

    def poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: until something happens) for a child to
        report or exit, or a watched fd to be readable; handle it and every due deadline."""
        due = self._next_deadline()
        if due is not None:
            wait = max(0.0, due - time.monotonic())
            timeout = wait if timeout is None else min(timeout, wait)
        if self._find_dag is not None and self._spare is None and not self._spare_died:
            # Fork the next spare only when nothing waits, so no event waits for a fork.
            ready = self.selector.select(0)
            if not ready:
                self._fork_spare()
                ready = self.selector.select(timeout)
        else:
            ready = self.selector.select(timeout)
        for key, _ in ready:
            key.data()
        self._enforce_deadlines()

    def close(self) -> None:
        if self._spare is not None:
            self._discard_spare(self._spare)
        self.selector.close()

    # --------------------------------------------------------------------------- the child

    def _child_setup(self) -> None:
        """What a child does first, before its workload may be known."""
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._close_parent_fds()
        # Standard input is /dev/null from here on, not the caller's (a worker reads its
        # commands there), and never a free slot a database socket could take: the log
        # redirection later replaces descriptors 0, 1 and 2.
        null_fd = os.open(os.devnull, os.O_RDONLY)
        if null_fd != 0:
            os.dup2(null_fd, 0)
            os.close(null_fd)
        self.engine.dispose(close=False)

    def _child_run(self, workload: TaskWorkload, dag: Any, result_fd: int, path: Path,
                   deadline: float | None) -> None:
        code = CHILD_CRASHED
        try:
            _redirect_output(path)

            def send(message: dict[str, Any]) -> None:
                with contextlib.suppress(OSError):
                    os.write(result_fd, (json.dumps(message) + "\n").encode())

            supervision = Supervision(deadline, self.heartbeat_interval,
                                      lambda: send({"running": True, "pid": os.getpid()}))
            result = run_task(dag, workload.task_id, workload.run_id,
                              map_index=workload.map_index, try_number=workload.try_number,
                              engine=self.engine, plugins=self.plugins, supervision=supervision,
                              log_folder=self.log_folder)
            import resource

            send({"started": result.started, "state": result.state, "message": result.message,
                  "error": result.error, "log_path": result.log_path,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
            code = CHILD_OK if result.ok else CHILD_TASK_FAILED
        except BaseException:
            with contextlib.suppress(Exception):
                import traceback

                traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _close_parent_fds(self) -> None:
        fds = set(self._extra_fds)
        for child in [*self.children.values(), *self._exiting.values()]:
            fds.update((child.pidfd, child.result_fd))
        if self._spare is not None:
            spare = self._spare
            fds.update((spare.pidfd, spare.command_fd, spare.result_fd))
        with contextlib.suppress(Exception):
            fds.add(self.selector.fileno())
        for fd in fds - {0, 1, 2}:
            with contextlib.suppress(OSError):
                os.close(fd)

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
        if not isinstance(message, dict):
            return
        workload = child.workload
        if message.get("running"):
            self.on_event(TaskEvent(workload.key, TIS.RUNNING, workload.try_number,
                                    {"pid": message.get("pid")}))
        elif "state" in message and child.outcome is None:
            child.outcome = message
            if message.get("started") and message.get("state") == TIS.RUNNING:
                return  # someone else ended the try first: settled when the child exits
            # The try's end is committed: tell the caller now rather than after the process
            # has torn itself down; the exit is still waited for and its group killed.
            del self.children[workload.key]
            self._exiting[child.pid] = child
            self.on_event(self._final_event(child, None, int(message.get("max_rss_kb") or 0)))

    def _exited(self, child: _Child) -> None:
        if child.closed:
            return
        self._drain(child)
        # Whatever the task left behind in its group dies with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        _, status, usage = os.wait4(child.pid, 0)
        child.closed = True
        for fd in (child.pidfd, child.result_fd):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            os.close(fd)
        if self._exiting.pop(child.pid, None) is not None:
            return  # its final event was sent with its outcome
        del self.children[child.workload.key]
        self.on_event(self._final_event(child, status, usage.ru_maxrss))

    def _final_event(self, child: _Child, status: int | None, max_rss_kb: int) -> TaskEvent:
        """The try's final event: from its outcome (``status`` None: sent before the child
        exited), or, when it reported none, after ending the try of the dead process."""
        workload = child.workload
        info: dict[str, Any] = {"max_rss_kb": max_rss_kb, "log_path": str(child.log_path)}
        if status is not None:
            info["exit"] = describe_status(status)
        outcome = child.outcome
        if outcome is not None and not outcome.get("started"):
            info["message"] = outcome.get("message", "")
            return TaskEvent(workload.key, "refused", workload.try_number, info)
        if outcome is not None and outcome.get("state") != TIS.RUNNING:
            info.update({k: outcome[k] for k in ("message", "error") if outcome.get(k)})
            return TaskEvent(workload.key, str(outcome["state"]), workload.try_number, info)
        assert status is not None
        reason = self._death_reason(child, status)
        info["reason"] = reason
        state = end_dead_try(self.engine, workload, reason, child.task, self.plugins)
        if state is None:  # never started: nothing ran, the scheduler decides what to do
            return TaskEvent(workload.key, "lost", workload.try_number, info)
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
        log.info("stopping %s (%s): SIGTERM to process group %d", child.workload.key, reason,
                 child.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)

    def _next_deadline(self) -> float | None:
        times = [t for child in self.children.values()
                 for t in (child.kill_at, None if child.stop_reason else child.deadline)
                 if t is not None]
        return min(times) if times else None

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.stop_reason is None and child.deadline is not None and now >= child.deadline:
                self._terminate(child, "timeout")
            elif child.kill_at is not None and now >= child.kill_at:
                child.kill_at = None
                log.warning("%s did not stop within %g seconds: SIGKILL to process group %d",
                            child.workload.key, self.kill_grace, child.pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)


def _redirect_output(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
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


def end_dead_try(engine: Engine, workload: TaskWorkload, reason: str, task: Any,
                 plugins: Any) -> str | None:
    """End a try whose process died while running: ``up_for_retry`` while tries remain, else
    ``failed``, guarded by ``state = 'running' AND try_number = N``. Returns the task
    instance's state afterwards (whoever set it), or None if the try never started."""
    from flow.secrets.masking import redact
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
                     log_folder: str) -> str | None:
    """Fail a queued try that cannot start (its DAG or task is not in the file any more), with
    the reason in its log; guarded by ``state = 'queued' AND try_number = N``. Returns the
    new state, or None when the try was not queued (a late or duplicate delivery)."""
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
    append_to_log(log_path(log_folder, key.dag_id, key.run_id, key.task_id, key.map_index,
                           workload.try_number), reason)
    return str(TIS.FAILED)


def _seconds_since(start: datetime | None, now: datetime) -> float | None:
    return (now - start).total_seconds() if start is not None else None


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (typed loosely: the ORM's Result does not declare it)."""
    return int(result.rowcount)
