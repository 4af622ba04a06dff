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
