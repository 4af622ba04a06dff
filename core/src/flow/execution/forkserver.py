"""A fork server: the process a local executor worker's tries are forked from.

A worker starts it first thing, once flow, the plugins and a try's warm-up are loaded and
before the worker imports SQLAlchemy and connects to the database: every try forked from it is
then a copy of a process of about half the worker's size, which is quicker to fork, to copy
on write and to tear down. The server imports the DAG files (the worker never runs a DAG
file's code), forks the children that wait for a try (each hands itself to the worker), and
reaps them:

* **load**: the worker asks it to import a DAG file (under the import timeout); it answers with
  what the worker needs of each task (:class:`~flow.execution.supervisor.TaskLimits`), the
  file's import errors, and its DAGs version, which changes with every import;
* **fork**: it forks that many children; each sets itself up, makes its pipes and sends itself
  to the worker with the supervisor's ends of them (``SCM_RIGHTS``) and the DAGs version it
  was forked under (see :func:`~flow.execution.supervisor.fork_spare`), then waits on its
  command pipe. The worker uses a child only if that is the version of the answers it holds.
  The server does nothing else per child: after each fork, every page it writes is copied;
* **exits**: told by ``SIGCHLD`` (through a wake-up descriptor), it kills what is left of each
  exited child's process group, reaps it, and sends its wait status and peak memory.

Two socket pairs join them: a stream of JSON lines for the commands and the load answers
(which can be large), and a ``SOCK_SEQPACKET`` one for the children and their exits (small
messages that carry descriptors). The server dies with its worker (``PR_SET_PDEATHSIG``) and
exits when the worker closes the sockets; its children then learn that their supervisor is
gone and end their tries themselves, as they would if their worker died. A worker whose server
dies takes no more work and exits.
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flow.execution.supervisor import (
    ChildContext,
    TaskLimits,
    _load_prctl,
    fork_spare,
    set_death_signal,
)
from flow.execution.workload import TaskWorkload

log = logging.getLogger("flow.forkserver")

# Seconds a stopping server waits for its children to exit, once its worker closed.
STOP_GRACE = 5.0


@dataclass
class Received:
    """What the server sent on its children socket: a spare, or the exits of children."""

    spare: tuple[int, int, int, int] | None = None  # pid, version, result fd, command fd
    exited: list[tuple[int, int, int]] = field(default_factory=list)  # pid, status, max RSS


@dataclass
class LoadAnswer:
    """The server's answer to a load: what the worker needs of the DAGs in one file."""

    path: str
    version: tuple[int, str | None] | None  # (mtime_ns, dag_hash) imported; None: unreadable
    dags: dict[str, dict[str, TaskLimits]]
    errors: list[str]
    problem: str  # why the file cannot be read, or ""
    number: int  # the load request this answers

    def find(self, dag_id: str, task_id: str) -> tuple[TaskLimits | None, str]:
        """The limits of ``dag_id.task_id``, or None and why it is not in the file."""
        if self.problem:
            return None, self.problem
        tasks = self.dags.get(dag_id)
        if tasks is not None and task_id in tasks:
            return tasks[task_id], ""
        from flow.scheduling.dagbag import not_found_reason

        return None, not_found_reason(self.path, dag_id, task_id, tasks is not None,
                                      self.errors)


class ForkServer:
    """The worker's side of its fork server."""

    def __init__(self, pid: int, control: socket.socket, children: socket.socket) -> None:
        self.pid = pid
        self.alive = True
        self.version = 0  # the server's DAGs version, as of the last load answer read
        self.outstanding = 0  # children asked for and not received yet
        self._received: set[int] = set()  # children received and not exited yet
        self.answers: dict[str, LoadAnswer] = {}  # the last load answer read, by path
        self._control = control
        self._children = children
        self._buffer = b""
        self._loads = 0
        # Load request number -> (path, when it was sent); guarded by _loads_changed, which a
        # watchdog thread waits on (see importing_since).
        self._unanswered: dict[int, tuple[str, float]] = {}
        self._last_answer = time.monotonic()
        self._loads_changed = threading.Condition()
        self._status: int | None = None
        self.kill_reason = ""  # why this process killed the server, if it did

    @classmethod
    def start(cls, context: ChildContext, load: Callable[[str], Any],
              inherited_fds: set[int]) -> ForkServer:
        """Fork the server from this process. ``load(path)`` imports a DAG file there (a
        :class:`flow.scheduling.dagbag.LoadedFile`); ``inherited_fds`` are this process's
        descriptors that the server closes first."""
        control, server_control = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        children, server_children = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        _load_prctl()  # here, not in the server: its children share it
        pid = os.fork()
        if pid == 0:  # the server never returns from here
            code = 1
            try:
                control.close()
                children.close()
                set_death_signal(signal.SIGKILL)  # it dies with its worker
                if os.getppid() != parent:
                    os._exit(0)
                _close_fds(inherited_fds - {server_control.fileno(),
                                            server_children.fileno()})
                null_fd = os.open(os.devnull, os.O_RDONLY)  # not the worker's commands
                if null_fd != 0:
                    os.dup2(null_fd, 0)
                    os.close(null_fd)
                context.parent_pid = os.getpid()
                _Server(server_control, server_children, context, load).serve()
                code = 0
            except BaseException:
                with contextlib.suppress(Exception):
                    log.exception("the fork server failed")
            finally:
                os._exit(code)
        server_control.close()
        server_children.close()
        return cls(pid, control, children)

    def fileno(self) -> int:
        """The children socket: readable when spares or exits arrived."""
        return self._children.fileno()

    def control_fileno(self) -> int:
        """The control socket: readable when load answers arrived."""
        return self._control.fileno()

    def load(self, path: str, dag_hash: str | None) -> int:
        """Ask the server to import ``path`` (unless it holds it at this version); returns
        the request's number, which its answer carries."""
        self._loads += 1
        with self._loads_changed:
            self._unanswered[self._loads] = (path, time.monotonic())
            self._loads_changed.notify_all()
        self._send({"op": "load", "path": path, "dag_hash": dag_hash, "number": self._loads})
        return self._loads

    def _answered(self, number: int) -> None:
        with self._loads_changed:
            self._unanswered.pop(number, None)
            self._last_answer = time.monotonic()
            self._loads_changed.notify_all()

    def importing_since(self) -> tuple[str, float] | None:
        """The file the server is importing now (its oldest load left unanswered, since it
        answers them in order) and since when (that load's sending, or the last answer if
        that came later); None when it imports nothing."""
        with self._loads_changed:
            if not self._unanswered:
                return None
            path, sent = self._unanswered[min(self._unanswered)]
            return path, max(sent, self._last_answer)

    def wait_for_loads(self, timeout: float | None) -> None:
        """Block until a load is sent or answered, the server is closed, or ``timeout``."""
        with self._loads_changed:
            self._loads_changed.wait(timeout)

    def kill(self, reason: str) -> None:
        """Kill the server (``SIGKILL``), saying why: the worker finds it gone as it would if
        it had died."""
        self.kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def importing(self) -> str | None:
        """Once the server is gone: the file it was importing when it died (its oldest load
        left unanswered, since it answers them in order), or None."""
        while self._read_answers(False, []):  # the answers it sent before it died
            pass
        current = self.importing_since()
        return current[0] if current is not None else None

    def exit_status(self) -> int | None:
        """Once the server is gone: its wait status (reaped here, once)."""
        if self._status is None:
            with contextlib.suppress(ChildProcessError):
                self._status = os.waitpid(self.pid, 0)[1]
        return self._status

    def fork(self, count: int) -> None:
        """Ask for ``count`` more children; they arrive through :meth:`receive`."""
        self.outstanding += count
        self._send({"op": "fork", "count": count})

    def _send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            return
        try:
            self._control.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            self.alive = False

    def loaded(self, block: bool) -> list[LoadAnswer]:
        """The load answers that arrived (with ``block``, at least one unless the server is
        gone), also kept in :attr:`answers`. The server answers a load before it forks the
        next child, so a child of a newer version than :attr:`version` means its answer is
        here to read."""
        answers: list[LoadAnswer] = []
        while self.alive:
            if not self._read_answers(block and not answers, answers):
                break
        return answers

    def _read_answers(self, wait: bool, answers: list[LoadAnswer]) -> bool:
        """Read what arrived on the control socket (with ``wait``, block until something
        does), adding its whole answers to ``answers``; False when nothing was there, or the
        server is gone (then :attr:`alive` is False)."""
        try:
            data = self._control.recv(1 << 20, 0 if wait else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.alive = False
            return False
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            answer = json.loads(line)
            self.version = int(answer["dags_version"])
            answers.append(LoadAnswer(
                answer["path"], tuple(answer["version"]) if answer["version"] else None,
                {dag_id: {task_id: TaskLimits.from_json(limits)
                          for task_id, limits in tasks.items()}
                 for dag_id, tasks in answer["dags"].items()},
                list(answer["errors"]), answer["problem"], int(answer["number"])))
            self.answers[answers[-1].path] = answers[-1]
            self._answered(answers[-1].number)
        return True

    def receive(self, block: bool) -> list[Received]:
        """The children and exits that arrived (with ``block``, at least one message unless
        the server is gone)."""
        messages: list[Received] = []
        while self.alive:
            flags = socket.MSG_CMSG_CLOEXEC
            if messages or not block:
                flags |= socket.MSG_DONTWAIT
            try:
                data, fds = _recv_fds(self._children, flags)
            except BlockingIOError:
                break
            except OSError:
                data, fds = b"", []
            if not data:
                self.alive = False
                _close_fds(set(fds))
                break
            message = json.loads(data)
            if "spare" in message:  # sent by the child itself
                result_fd, command_fd = fds
                self.outstanding = max(0, self.outstanding - 1)
                self._received.add(int(message["spare"]))
                messages.append(Received(spare=(int(message["spare"]), int(message["version"]),
                                                result_fd, command_fd)))
            else:
                exited = [(int(pid), int(status), int(rss))
                          for pid, status, rss in message["exited"]]
                for pid, _, _ in exited:
                    if pid in self._received:
                        self._received.discard(pid)
                    else:  # it died before it could hand itself over: ask again
                        self.outstanding = max(0, self.outstanding - 1)
                messages.append(Received(exited=exited))
        return messages

    def close(self, graceful: bool = True) -> None:
        """Close the sockets and reap the server. ``graceful`` (no try running): the server
        first reaps its children, which exit as their command pipes closed; else it exits at
        once, and the tries it forked, told so by the kernel, end themselves."""
        if graceful:
            self._send({"op": "stop"})
        self.alive = False
        with self._loads_changed:
            self._loads_changed.notify_all()
        for sock in (self._control, self._children):
            with contextlib.suppress(OSError):
                sock.close()
        self.exit_status()


class _Server:
    """The server's side: its loop, the DAG files it holds, the children it forked."""

    def __init__(self, control: socket.socket, children: socket.socket, context: ChildContext,
                 load: Callable[[str], Any]) -> None:
        self.control = control
        self.children = children
        self.context = context
        self.load_file = load
        self.selector = selectors.DefaultSelector()
        # path -> ((mtime_ns, dag_hash), the imported file, the answer's "dags")
        self.dags: dict[str, tuple[tuple[int, str | None], Any, dict[str, Any]]] = {}
        self.version = 0
        self.to_fork = 0
        self.forked: set[int] = set()  # children not reaped yet
        # Exits arrive as SIGCHLD, which writes a byte on this socket (see serve): one per
        # burst, not a descriptor to open, watch and close per child.
        self.wakeup, self.wakeup_write = socket.socketpair()
        for sock in (self.wakeup, self.wakeup_write):
            sock.setblocking(False)
        self.exited: list[list[int]] = []
        self.buffer = b""
        self.serving = True  # until the worker closes its end
        self.stopping = False  # told to stop: reap the children, then exit

    def serve(self) -> None:
        self.selector.register(self.control, selectors.EVENT_READ, self._commands)
        signal.set_wakeup_fd(self.wakeup_write.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.wakeup, selectors.EVENT_READ, self._reap)
        give_up = None
        while self.serving or (self.stopping and self.forked):
            if not self.serving and give_up is None:
                give_up = time.monotonic() + STOP_GRACE
            wait = None if give_up is None else max(0.0, give_up - time.monotonic())
            # One child per pass, so exits and commands that arrive meanwhile go first.
            ready = self.selector.select(0 if self.to_fork else wait)
            for key, _ in ready:
                key.data()
            self._send_exits()
            if self.to_fork and self.serving:
                self._fork_one()
            if give_up is not None and time.monotonic() >= give_up:
                break

    def _commands(self) -> None:
        data = self.control.recv(1 << 16)
        if not data:  # the worker closed its end
            self.serving = False
            self.selector.unregister(self.control)
            return
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            command = json.loads(line)
            if command["op"] == "fork":
                self.to_fork += int(command["count"])
            elif command["op"] == "stop":
                self.stopping, self.to_fork = True, 0
            elif command["op"] == "load":
                self._load(str(command["path"]), command.get("dag_hash"),
                           int(command["number"]))

    def _load(self, path: str, dag_hash: str | None, number: int) -> None:
        answer: dict[str, Any] = {"path": path, "version": None, "dags": {}, "errors": [],
                                  "problem": "", "number": number}
        try:
            version = (os.stat(path).st_mtime_ns, dag_hash)
        except OSError as err:
            answer["problem"] = f"DAG file {path} cannot be read: {err}"
        else:
            cached = self.dags.get(path)
            if cached is None or cached[0] != version:
                loaded = self.load_file(path)
                limits = {dag.dag_id: {task.task_id: TaskLimits.of(task).to_json()
                                       for task in dag.tasks} for dag in loaded.dags}
                cached = self.dags[path] = (version, loaded, limits)
                self.version += 1
            answer.update(version=list(version), dags=cached[2],
                          errors=[str(error) for error in cached[1].errors])
        answer["dags_version"] = self.version
        self._write(answer)

    def _write(self, answer: dict[str, Any]) -> None:
        try:
            self.control.sendall((json.dumps(answer) + "\n").encode())
        except OSError:
            self.serving = False

    def _find_dag(self, workload: TaskWorkload) -> Any:
        """In a child: the workload's DAG, as this server held it at the fork."""
        cached = self.dags.get(os.path.abspath(workload.dag_file))
        if cached is None:
            return None
        return next((dag for dag in cached[1].dags if dag.dag_id == workload.dag_id), None)

    def _inherited_fds(self) -> set[int]:
        fds = {self.control.fileno(), self.children.fileno(), self.wakeup.fileno(),
               self.wakeup_write.fileno()}
        with contextlib.suppress(Exception):
            fds.add(self.selector.fileno())
        return fds

    def _fork_one(self) -> None:
        self.to_fork -= 1
        self.forked.add(fork_spare(self.context, self._find_dag, self._inherited_fds,
                                   self.children, self.version))

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self.wakeup.recv(4096):
                pass
        while True:
            # Looked at first, reaped after: until then its pid, and so its process group's
            # number, cannot be anybody else's.
            try:
                exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if exited is None:
                return
            pid = exited.si_pid
            ours = pid in self.forked  # (else a process a DAG file's import started)
            if ours:  # whatever the task left behind in its group dies with it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            if ours:
                self.forked.discard(pid)
                self.exited.append([pid, status, usage.ru_maxrss])

    def _send_exits(self) -> None:
        if not self.exited:
            return
        exited, self.exited = self.exited, []
        with contextlib.suppress(OSError):  # the worker is gone or stopping
            self.children.send(json.dumps({"exited": exited}).encode())


def _recv_fds(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """One message and the (up to two) descriptors it carries. (``socket.recv_fds`` of
    Python 3.11 ignores its ``flags``.)"""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(1 << 16, socket.CMSG_LEN(2 * fds.itemsize), flags)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _close_fds(fds: set[int]) -> None:
    for fd in fds - {0, 1, 2}:
        with contextlib.suppress(OSError):
            os.close(fd)
