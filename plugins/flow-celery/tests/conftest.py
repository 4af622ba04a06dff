"""Real brokers (Redis, RabbitMQ), a real PostgreSQL metadata database, real ``flow celery
worker`` processes.

Isolation between concurrent tests (``pytest -n 2``) on the shared servers: every test gets its
own queue prefix (``[celery] queue_prefix``), so its messages, queues and Celery task ids are
its own; its queues are deleted at teardown. Each worker runs in its own session (process
group), and teardown kills the whole session, so no process outlives its test. Broker URLs come
from ``FLOW_TEST_REDIS_URL`` / ``FLOW_TEST_RABBITMQ_URL``; with ``CI=true`` an unreachable
broker fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from flow.testing.databases import IN_CI, TestDatabases

BROKERS = {
    "redis": os.environ.get("FLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("FLOW_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
WORKER_START_TIMEOUT = 60.0

_state: dict[str, Any] = {}


def broker_unavailable(broker: str, error: Exception) -> None:
    message = f"{broker} at {BROKERS[broker]} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure, start it)")
    pytest.skip(f"{message}; set CI=true to make this a failure")


def check_broker(broker: str) -> None:
    parts = urlsplit(BROKERS[broker])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1",
                                       parts.port or (6379 if broker == "redis" else 5672)), 3):
            pass
    except OSError as err:
        broker_unavailable(broker, err)


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    databases = TestDatabases(tmp_path_factory, prefix="flow_celery_test")
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_url(_databases: TestDatabases) -> str:
    """This session's migrated PostgreSQL database (emptied after each test using it)."""
    url = _databases.url("postgresql")
    _state["postgres_url"] = url
    return url


def session_postgres_url() -> str:
    return str(_state["postgres_url"])


def flow_command() -> list[str]:
    flow = Path(sys.executable).with_name("flow")
    return [str(flow)] if flow.exists() else [sys.executable, "-m", "flow.cli.main"]


class Workers:
    """``flow celery worker`` processes of one test, each in its own session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []

    def start(self, count: int = 1, concurrency: int = 2, queues: str = "default",
              env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            name = f"w{len(self.processes)}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
            log_file = self.folder / f"worker-{len(self.processes)}.log"
            with open(log_file, "wb") as log:
                process = subprocess.Popen(
                    [*flow_command(), "celery", "worker", "--queues", queues,
                     "--concurrency", str(concurrency), "--hostname", name],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **(env or {})}, start_new_session=True)
            self.processes.append(process)
            self.names.append(name)
            started.append(process)
        for process in started:
            self.wait_ready(process)
        return started

    def log(self, process: subprocess.Popen[bytes]) -> str:
        index = self.processes.index(process)
        return (self.folder / f"worker-{index}.log").read_text(errors="replace")

    def wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while " ready." not in self.log(process):
            if process.poll() is not None:
                raise AssertionError(f"flow celery worker exited with {process.returncode}:\n"
                                     f"{self.log(process)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"flow celery worker not ready in {WORKER_START_TIMEOUT} "
                                     f"s:\n{self.log(process)[-3000:]}")
            time.sleep(0.1)

    def kill_session(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL every process of the worker's session: the worker, its pool processes and
        the tries they run (each try has a process group of its own in the session)."""
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            for pid in session_members(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


def session_members(session_id: int) -> list[int]:
    """Every live process whose session is ``session_id``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":  # fields[3]: the session id
            members.append(int(entry))
    return members


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def delete_queues(broker: str, prefix: str) -> None:
    """Remove what a test left on the shared broker: its queues (and their messages)."""
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(BROKERS[broker])
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        return
    from kombu import Connection

    with Connection(BROKERS[broker]) as connection:
        for name in _used_queues.pop(prefix, set()):
            with contextlib.suppress(Exception):
                connection.default_channel.queue_delete(name)


_used_queues: dict[str, set[str]] = {}


def used_queues(prefix: str) -> set[str]:
    """The queues of the test with queue prefix ``prefix``, deleted at its end (add those a
    test uses beyond ``default``)."""
    return _used_queues.setdefault(prefix, set())


def queue_length(broker: str, name: str) -> int:
    """Messages waiting in queue ``name`` (for Redis: also those taken but not acknowledged,
    which a dead worker leaves behind until their visibility timeout)."""
    if broker == "redis":
        import json

        import redis

        client = redis.Redis.from_url(BROKERS[broker])
        try:
            waiting = int(client.llen(name))
            unacked = 0
            for value in client.hvals("unacked"):
                with contextlib.suppress(ValueError, TypeError, IndexError):
                    if json.loads(value)[2] == name:
                        unacked += 1
            return waiting + unacked
        finally:
            client.close()
    from kombu import Connection

    with Connection(BROKERS[broker]) as connection:
        _, count, _ = connection.default_channel.queue_declare(name, passive=True)
        return int(count)


@pytest.fixture
def celery_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[dict[str, str]]:
    """``[celery]`` settings for a test on the broker named by the test's ``broker`` param (or
    attribute): a queue prefix of its own, short timeouts. Returns what was set."""
    broker = getattr(request, "param", None) or getattr(request.cls, "broker", None) or "redis"
    check_broker(broker)
    prefix = f"flowtest-{uuid.uuid4().hex[:10]}-"
    values = {"FLOW__CELERY__BROKER_URL": BROKERS[broker],
              "FLOW__CELERY__QUEUE_PREFIX": prefix,
              "FLOW__CELERY__RECONCILE_INTERVAL": "2",
              "FLOW__CELERY__OPERATION_TIMEOUT": "3",
              "FLOW__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "1",
              "FLOW__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "6",
              "FLOW__CORE__TASK_KILL_GRACE_PERIOD": "2"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _used_queues.setdefault(prefix, set()).add(f"{prefix}default")
    values["broker"] = broker
    try:
        yield values
    finally:
        delete_queues(broker, prefix)


# ------------------------------------------------------------------ a whole flow deployment

LEDGER = "celery_test_ledger"
# The head of the DAG files of the deployment tests: ``ledger(ti)`` records that a try ran (and
# in which process and session) in a table of the metadata database.
DAG_HEADER = f'''
import os, signal, time
from datetime import datetime, timedelta

import sqlalchemy
from flow import DAG
from flow.operators import PythonOperator


def ledger(ti):
    engine = sqlalchemy.create_engine(os.environ["FLOW__DATABASE__URL"],
                                      poolclass=sqlalchemy.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "INSERT INTO {LEDGER} (task_id, try_number, pid, sid) VALUES (:t, :n, :p, :s)"),
            {{"t": ti.task_id, "n": ti.try_number, "p": os.getpid(), "s": os.getsid(0)}})
    engine.dispose()


def dag(dag_id, **kwargs):
    return DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1), **kwargs)
'''


class Deployment:
    """A FLOW_HOME on the session's PostgreSQL database, ``flow scheduler`` processes with the
    celery executor, and helpers to trigger a run and read what happened."""

    def __init__(self, home: Path, engine: Any, workers: Workers, celery: dict[str, str]
                 ) -> None:
        self.home = home
        self.engine = engine
        self.workers = workers
        self.celery = celery
        self.schedulers: list[subprocess.Popen[bytes]] = []

    @property
    def broker(self) -> str:
        return self.celery["broker"]

    def queue(self, name: str = "default") -> str:
        return f"{self.celery['FLOW__CELERY__QUEUE_PREFIX']}{name}"

    def add_dag(self, dag_id: str, body: str) -> str:
        from flow.scheduling.actions import set_paused
        from flow.scheduling.processor import DagProcessor

        (self.home / "dags" / f"{dag_id}.py").write_text(DAG_HEADER + body)
        DagProcessor(self.home / "dags", engine=self.engine).process(force=True)
        set_paused(dag_id, False, actor="test", source="cli")
        return dag_id

    def add_dag_file(self, path: Path, dag_id: str) -> str:
        """A DAG file as it is (``bench/workloads``)."""
        from flow.scheduling.actions import set_paused
        from flow.scheduling.processor import DagProcessor

        (self.home / "dags" / path.name).write_text(path.read_text())
        DagProcessor(self.home / "dags", engine=self.engine).process(force=True)
        set_paused(dag_id, False, actor="test", source="cli")
        return dag_id

    def start_scheduler(self, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"scheduler-{len(self.schedulers)}.log", "wb")
        process = subprocess.Popen([*flow_command(), "scheduler"], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "FLOW__CORE__EXECUTOR": "celery", **env},
                                   start_new_session=True)
        log.close()
        self.schedulers.append(process)
        return process

    def scheduler_log(self, index: int = -1) -> str:
        number = index if index >= 0 else len(self.schedulers) + index
        return (self.home / f"scheduler-{number}.log").read_text(errors="replace")

    def trigger(self, dag_id: str) -> str:
        from flow.scheduling.actions import trigger_dag_run

        return str(trigger_dag_run(dag_id, actor="test", source="cli").run_id)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        from sqlalchemy import select

        from flow.store.models import DagRun

        deadline = time.monotonic() + timeout
        with self.engine.connect() as connection:
            while True:
                state = connection.execute(select(DagRun.state).where(
                    DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalar_one()
                connection.rollback()
                if state in ("success", "failed"):
                    return str(state)
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id} of {dag_id} still {state} after "
                                         f"{timeout:.0f} s; states {self.states(dag_id)}\n"
                                         f"{self.scheduler_log()[-4000:]}")
                time.sleep(0.2)

    def states(self, dag_id: str) -> dict[str, tuple[str | None, int]]:
        from sqlalchemy import select

        from flow.store.models import TaskInstance
        from flow.store.session import session_scope

        with session_scope(self.engine) as session:
            rows = session.execute(select(TaskInstance.task_id, TaskInstance.state,
                                          TaskInstance.try_number)
                                   .where(TaskInstance.dag_id == dag_id)).all()
        return {task_id: (state, try_number) for task_id, state, try_number in rows}

    def try_error(self, dag_id: str, task_id: str, try_number: int) -> str:
        """The error recorded for one try of ``task_id`` (its task_instance_try row)."""
        from sqlalchemy import select

        from flow.store.models import TaskInstance, TaskInstanceTry
        from flow.store.session import session_scope

        with session_scope(self.engine) as session:
            return str(session.scalar(
                select(TaskInstanceTry.error)
                .join(TaskInstance, TaskInstance.id == TaskInstanceTry.task_instance_id)
                .where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                       TaskInstanceTry.try_number == try_number)))

    def ledger(self) -> list[tuple[str, int, int, int]]:
        """(task_id, try_number, pid, session id) of every try that ran, in order."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(  # type: ignore[misc]
                f"SELECT task_id, try_number, pid, sid FROM {LEDGER} ORDER BY id"))]

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.schedulers:
            for pid in session_members(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@pytest.fixture
def flow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str,
              _databases: TestDatabases) -> Iterator[Any]:
    from sqlalchemy import text

    from flow.testing.environment import isolated_flow_home

    with isolated_flow_home(tmp_path / "home", monkeypatch, postgres_url) as environment:
        with environment.engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {LEDGER}"))
            connection.execute(text(f"CREATE TABLE {LEDGER} (id SERIAL PRIMARY KEY, "
                                    "task_id TEXT, try_number INT, pid INT, sid INT, "
                                    "at TIMESTAMPTZ DEFAULT now())"))
        try:
            yield environment
        finally:
            from flow.store.session import dispose_engines

            dispose_engines()
            _databases.empty(postgres_url)


@pytest.fixture
def deployment(flow_home: Any, celery_env: dict[str, str], workers: Workers
               ) -> Iterator[Deployment]:
    """Ordered so that the flow home's environment is set before ``[celery]``'s, and the
    schedulers and workers are stopped before the database is emptied."""
    made = Deployment(flow_home.home, flow_home.engine, workers, celery_env)
    try:
        yield made
    finally:
        made.stop()
        workers.stop_all()


class BrokerProxy:
    """A TCP proxy from 127.0.0.1:<port> to a broker, that can cut every connection and
    refuse new ones for a while: a broker outage without touching the shared server."""

    def __init__(self, url: str) -> None:
        import threading

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self.url = url
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._open()

    def proxied_url(self) -> str:
        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        return parts._replace(netloc=f"{netloc}:{self.port}").geturl()

    def _open(self) -> None:
        import threading

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: an outage
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones until :meth:`restore`."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._open()

    def close(self) -> None:
        self.cut()
