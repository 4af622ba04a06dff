"""A warm worker of the local executor: ``python -m flow.builtin.executors.local_worker``.

Started once by :class:`~flow.builtin.executors.local.LocalExecutor` and kept. It first loads
flow, the plugins, the configuration and what every try uses, and forks its fork server
(:mod:`flow.execution.forkserver`), which imports the DAG files (each on first use, again when
the file's mtime or the workload's ``dag_hash`` changes) and forks the tries' children; then it
loads the database engine and supervises every try through
:class:`~flow.execution.supervisor.Supervisor`: a task costs a fork of the small fork server,
not an interpreter start, and this process, which commits the tries' starts and ends, never
forks.

Protocol, JSON lines (no pickle): commands on stdin, ``{"op": "run", "workload": "<TaskWorkload
JSON>"}``, ``{"op": "load", "dag_file": path, "dag_hash": hash}`` (have the fork server import
that file before its first workload:
:meth:`~flow.execution.executor.BaseExecutor.prepare`), ``{"op": "cancel", "key": {...}}``,
``{"op": "stop", "kill": bool}``, ``{"op": "bad_file", "dag_file": path, "mtime_ns": n,
"reason": text}`` (do not import that file while it has that modification time: its tries fail
with ``reason``); TaskEvents on the file descriptor given by ``--events-fd``, and, when the fork
server died importing a DAG file, ``{"bad_dag_file": path, "mtime_ns": n, "reason": text}``
before the worker exits.
When stdin closes (the executor shut down or the scheduler died) the worker takes no new work,
lets its running tries finish (still enforcing their timeouts and ending the ones that die),
then exits: a running task is never orphaned without a supervisor while its worker lives. A
worker whose fork server died exits (code 1); the tries it ran end themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload, WorkloadError

if TYPE_CHECKING:
    from flow.execution.forkserver import ForkServer


class LocalWorker:
    def __init__(self, supervisor: Any, events_fd: int) -> None:
        self.supervisor = supervisor
        self.server: ForkServer = supervisor.fork_server
        self.events_fd: int | None = events_fd
        self.stopping = False
        self._buffer = b""
        self._outbox: list[str] = []  # events, written together after each poll
        # DAG files that ended the fork server importing them (found here, or told by the
        # executor): path -> (mtime_ns, why); their tries fail until the file changes.
        self.bad_files: dict[str, tuple[int, str]] = {}
        supervisor.on_event = self.emit
        supervisor.watch(0, self._read_commands)
        supervisor.watch(self.server.control_fileno(), self._read_loads)

    def serve(self) -> int:
        """Run until told to stop and the running tries are done; 1 if the fork server died
        (the tries it forked end themselves)."""
        try:
            while not (self.stopping and not self.supervisor.running):
                self.supervisor.poll(None)
                self.flush_events()
                if self.supervisor.fork_server_lost:
                    self._report_bad_file()
                    print("flow local worker: its fork server died; exiting",
                          file=sys.stderr)
                    return 1
        finally:
            self.flush_events()
        return 0

    def emit(self, event: TaskEvent) -> None:
        """Send ``event`` to the executor, with the others of this poll (one write: one
        wake-up of the executor's reader, whatever the number of tries that started or ended
        together)."""
        if self.events_fd is not None:
            self._outbox.append(event.to_json())

    def flush_events(self) -> None:
        outbox, self._outbox = self._outbox, []
        if not outbox or self.events_fd is None:
            return
        data = ("\n".join(outbox) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.events_fd, data):]
        except OSError:  # the executor is gone; the database has the states
            self.events_fd = None

    def _report_bad_file(self) -> None:
        """Tell the executor which DAG file the fork server was importing when it died: the
        executor has no worker import it again until the file changes, so one bad file ends
        one fork server, not one after another."""
        from flow.execution.supervisor import describe_status

        path = self.server.importing()
        if path is None or self.events_fd is None:
            return
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            return
        status = self.server.exit_status()
        if self.server.kill_reason:
            reason = (f"DAG file {path} {self.server.kill_reason}; its tasks fail until the "
                      "file changes")
        else:
            how = describe_status(status) if status is not None else "it is gone"
            reason = (f"DAG file {path} ended the process that imports it for the local "
                      f"executor's tries ({how}): a DAG file must not exit or crash its "
                      "process at import; its tasks fail until the file changes")
        print(f"flow local worker: {reason}", file=sys.stderr)
        data = (json.dumps({"bad_dag_file": path, "mtime_ns": mtime_ns, "reason": reason})
                + "\n").encode()
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.events_fd, data):]

    def _bad_file(self, path: str) -> str | None:
        """Why ``path`` is not imported, if it is a bad file at its current modification
        time (a bad file that changed since is forgotten: it is imported again)."""
        known = self.bad_files.get(path)
        if known is None:
            return None
        try:
            changed = os.stat(path).st_mtime_ns != known[0]
        except OSError:
            changed = True
        if changed:
            del self.bad_files[path]
            return None
        return known[1]

    def _read_commands(self) -> None:
        data = os.read(0, 65536)
        if not data:
            self.supervisor.unwatch(0)
            self._stop()
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        runs: list[TaskWorkload] = []
        for line in lines:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("op") == "run":  # the runs that arrived together start together
                runs.append(TaskWorkload.from_json(command["workload"]))
                continue
            self._run(runs)
            runs = []
            self._handle(command)
        self._run(runs)

    def _handle(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "load":  # imported by the fork server, while this worker goes on
            path = os.path.abspath(str(command["dag_file"]))
            if not self.stopping and self._bad_file(path) is None:
                self.server.load(path, command.get("dag_hash"))
        elif op == "bad_file":
            self.bad_files[str(command["dag_file"])] = (int(command["mtime_ns"]),
                                                        str(command["reason"]))
        elif op == "cancel":
            self.supervisor.cancel(TaskKey.from_dict(command["key"]), "cancelled")
        elif op == "stop":
            self._stop()
            if command.get("kill"):
                self.supervisor.terminate_all("the executor shut down")

    def _stop(self) -> None:
        self.stopping = True
        self.supervisor.stop_keeping_spares()

    def _run(self, workloads: list[TaskWorkload]) -> None:
        from flow.execution.supervisor import fail_unstartable

        runnable = []
        for workload in workloads:
            limits, problem = self._limits(workload)
            if limits is None and not self.server.alive:
                # Not the try's fault: the executor hands it to another worker.
                self.emit(TaskEvent(workload.key, "lost", workload.try_number,
                                    {"reason": problem}))
                continue
            if limits is None:
                state = fail_unstartable(self.supervisor.engine, workload, problem,
                                         self.supervisor.log_folder, self.supervisor.plugins)
                self.emit(TaskEvent(workload.key, state or "refused", workload.try_number,
                                    {"message": problem}))
                continue
            runnable.append((workload, limits))
        if runnable:
            self.supervisor.launch_many(runnable)

    def _limits(self, workload: TaskWorkload) -> tuple[Any, str]:
        """What the supervisor needs of the workload's task, from the fork server, which
        imports the DAG file first unless it holds it at this modification time and
        ``dag_hash`` already; or None and why the task cannot run."""
        path = os.path.abspath(workload.dag_file)
        try:
            version = (os.stat(path).st_mtime_ns, workload.dag_hash)
        except OSError as err:
            return None, f"DAG file {path} cannot be read: {err}"
        bad = self._bad_file(path)
        if bad is not None:
            return None, bad
        known = self.server.answers.get(path)
        if known is None or known.version != version:
            number = self.server.load(path, workload.dag_hash)
            while (known := self.server.answers.get(path)) is None or known.number < number:
                if not self.server.alive:
                    return None, "the fork server of this worker died"
                self.server.loaded(block=True)
        return known.find(workload.dag_id, workload.task_id)

    def _read_loads(self) -> None:
        self.server.loaded(block=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flow-local-worker")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--kill-grace", type=float, default=None)
    args = parser.parse_args(argv)
    # Ctrl-C in the scheduler's terminal is the scheduler's to handle (shutdown tells us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from flow.config import load_config
    from flow.execution.forkserver import ForkServer
    from flow.execution.supervisor import ChildContext, Supervisor, kill_grace_period
    from flow.execution.task_runner import warm_up, warm_up_try
    from flow.plugins import current, set_current

    config = load_config()
    _settle_logging()
    plugins = current()
    set_current(plugins)
    _warm_imports()
    warm_up_try(plugins)
    _rehearse_try_output()
    _freeze()
    heartbeat_interval = config.get("scheduler", "task_heartbeat_interval")
    # The tries' fork server starts now, before this process imports SQLAlchemy and connects:
    # what a try is forked from is about half this worker's size (quicker to fork, to copy on
    # write and to tear down), and this process, which commits the tries' starts and ends,
    # never forks (after a fork, every page it writes would be copied).
    dags_folder = str(config.get("core", "dags_folder"))
    import_timeout = float(config.get("core", "dag_file_processor_timeout"))
    server = ForkServer.start(
        ChildContext(plugins, float(heartbeat_interval) if heartbeat_interval else None),
        lambda path: _load_dag_file(path, dags_folder, import_timeout), {args.events_fd})
    kill_grace = args.kill_grace if args.kill_grace is not None else kill_grace_period(config)
    threading.Thread(target=_watch_imports, args=(server, import_timeout, kill_grace),
                     name="flow-import-watchdog", daemon=True).start()

    from flow.store.session import get_engine

    engine = get_engine()
    # The executor checked the schema before starting us: the migration machinery is not
    # imported here.
    with engine.connect():  # the dialect initializes once here
        pass
    warm_up(engine, plugins)
    plugins.component_started("local_worker")
    _freeze()
    supervisor = Supervisor(
        engine=engine, plugins=plugins, on_event=lambda event: None,
        log_folder=str(config.get("logging", "base_log_folder")),
        heartbeat_interval=heartbeat_interval,
        kill_grace=kill_grace,
        fork_server=server, spares=int(config.get("local_executor", "spare_children")))
    worker = LocalWorker(supervisor, args.events_fd)
    code = 0
    try:
        code = worker.serve()
    except (WorkloadError, ValueError, KeyError) as err:
        print(f"flow local worker: bad command from the executor: {err}", file=sys.stderr)
        code = 2
    finally:
        supervisor.close()
        plugins.component_stopped("local_worker")
    raise SystemExit(code)


def _watch_imports(server: ForkServer, timeout: float, grace: float) -> None:
    """In a thread of the worker: kill the fork server when one import outlasts ``timeout``
    plus ``grace`` seconds. The alarm that enforces the timeout there cannot interrupt a file
    stuck in C code or one that ignores ``SIGALRM``, and a stuck fork server would hold every
    try of this worker; killed, it is a fork server that died importing that file."""
    limit = timeout + grace
    while server.alive:
        current = server.importing_since()
        if current is None:
            server.wait_for_loads(None)
            continue
        left = current[1] + limit - time.monotonic()
        if left > 0:
            server.wait_for_loads(left)
            continue
        server.kill(f"did not finish importing within {limit:g} s in the process that imports "
                    "it for the local executor's tries ([core] dag_file_processor_timeout "
                    f"{timeout:g} s, which it did not let interrupt it, and {grace:g} s of "
                    "grace), so that process was killed")
        return


def _load_dag_file(path: str, dags_folder: str, timeout: float) -> Any:
    """Import a DAG file in the fork server, under an alarm (a file that loops at import must
    not take the server with it), and work out once what each try of its tasks would."""
    loaded = _import(path, dags_folder, timeout)
    _prepare(loaded)
    _freeze()
    return loaded


def _prepare(loaded: Any) -> None:
    """Build each DAG's template environment and read its Python callables' signatures
    here, once, rather than in every try's child."""
    from flow.authoring.templating import LazyEnvironment
    from flow.builtin.operators.python import callable_parameters

    for dag in loaded.dags:
        with contextlib.suppress(Exception):  # a bad macro fails the try, not the server
            LazyEnvironment(dag).get()
        for task in dag.tasks:
            with contextlib.suppress(Exception):
                task.log  # noqa: B018  # its logger, looked up here once per operator class
            function = getattr(task, "python_callable", None)
            if callable(function):
                callable_parameters(function)


def _import(path: str, dags_folder: str, timeout: float) -> Any:
    from flow.exceptions import TaskTimeout
    from flow.scheduling.dagbag import DagFileError, LoadedFile, load_dag_file

    def on_alarm(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"importing {path} took longer than {timeout:g} seconds")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return load_dag_file(path, dags_folder)
    except TaskTimeout as err:
        return LoadedFile(path, errors=[DagFileError(path, None, str(err))])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _settle_logging() -> None:
    """Give the loggers the levels a try's log capture sets, here once: a level set in a forked
    child empties every logger's cache (and copies their pages)."""
    import logging

    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    logging.getLogger("flow.task").setLevel(logging.NOTSET)


def _rehearse_try_output() -> None:
    """Capture a try's output and log once here, into a scratch file: what a first run works
    out (the interpreter's specialized bytecode, the caches of logging, the codecs and the
    masking filter) is then inherited by every forked try instead of worked out again in each,
    about 0.3 ms of a try's CPU. Nothing of the scratch file is kept."""
    import logging
    import tempfile
    from pathlib import Path

    from flow.execution.logs import capture_task_output

    with tempfile.TemporaryDirectory(prefix="flow-worker-") as folder:
        path = Path(folder) / "attempt=1.log"
        with open(path, "a", encoding="utf-8") as output, \
                capture_task_output(path, None, output):
            logging.getLogger("flow.task").info("a rehearsal of a try's log: %s",
                                                "nothing runs")
            print("a rehearsal of a try's output")


def _freeze() -> None:
    """Keep the garbage collector off what is loaded so far (flow, the plugins, the DAG
    modules): a full collection would touch every object of it, copying each page that a forked
    try still shares, and take tens of milliseconds."""
    import gc

    _answer_abc_checks()
    gc.freeze()


def _answer_abc_checks() -> None:
    """Ask here the abstract-base-class checks every try makes, so that forked tries find the
    answers cached. A log record with one argument asks whether it is a ``Mapping``; an
    unanswered check walks the ABC's whole subclass tree (copying the pages it touches), in
    each try again, since a child's cache dies with it: about 0.4 ms of a try's CPU. Asked
    again after each DAG import, which may register new ABC subclasses (that empties the
    caches of negative answers)."""
    from collections.abc import Mapping

    samples: tuple[object, ...] = ("", 0, 0.0, None, True, b"", (), [])
    for value in samples:
        isinstance(value, Mapping)


def _warm_imports() -> None:
    """What every task needs, imported once before forking rather than once per task."""
    with contextlib.suppress(ImportError):
        import flow.execution.xcom
        import flow.operators
        import flow.secrets.connection
        import flow.secrets.masking  # noqa: F401


if __name__ == "__main__":
    main()
