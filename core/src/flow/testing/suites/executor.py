"""The executor suite: the behaviours users rely on, for every executor.

The author overrides ``executor_factory``: a callable ``(parallelism: int) -> BaseExecutor``.
Each test writes a DAG file, runs it through a fresh executor and reads the outcome from the
metadata database, the task logs and marker files the tasks write (``MARKS``), never from the
executor's internals. Child processes find the database through the environment
(``FLOW__DATABASE__URL``), so an executor whose workers run elsewhere must give them the same.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flow.testing.environment import FlowEnvironment
from flow.testing.runner import (
    FINAL_EVENTS,
    DagRunOutcome,
    create_dag_run,
    queue_task,
    run_dag,
    task_states,
)
from flow.testing.suites.base import ConformanceSuite, abstract_fixture, conformance

# The head of every test DAG file: MARKS is a folder the tasks write into, so the test can see
# what ran, when, and in which process.
HEADER = """
import os, signal, time
from datetime import datetime, timedelta
from pathlib import Path
from flow import DAG
from flow.operators import PythonOperator

MARKS = Path({marks!r})

def mark(name, text=""):
    with open(MARKS / name, "a") as handle:
        handle.write(f"{{text}}\\n")

def dag(dag_id, **kwargs):
    return DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1), **kwargs)
"""


class ExecutorConformance(ConformanceSuite):
    """Subclass and override ``executor_factory``; claim what the executor supports."""

    flow_suite = "executor"
    run_timeout: float = 120.0

    executor_factory = abstract_fixture(
        "executor_factory", "return a callable (parallelism: int) -> a BaseExecutor instance")

    @pytest.fixture
    def marks(self, flow_env: FlowEnvironment) -> Path:
        path = flow_env.home / "marks"
        path.mkdir(exist_ok=True)
        return path

    @pytest.fixture
    def executors(self, executor_factory: Callable[[int], Any], flow_plugins: Any
                  ) -> Iterator[Callable[..., Any]]:
        """Build (and at teardown shut down) executors with the author's factory."""
        made: list[Any] = []

        def make(parallelism: int = 1) -> Any:
            executor = executor_factory(parallelism)
            made.append(executor)
            return executor

        yield make
        for executor in made:
            executor.shutdown(wait=False)

    @pytest.fixture
    def run(self, flow_env: FlowEnvironment, dag_files: Any, marks: Path,
            executors: Callable[..., Any]) -> Callable[..., DagRunOutcome]:
        """``run(body, parallelism=1)``: write a DAG file (HEADER + body), run its DAG."""

        def run_body(body: str, parallelism: int = 1) -> DagRunOutcome:
            dag = dag_files.dag(HEADER.format(marks=str(marks)) + body)
            return run_dag(dag, executors(parallelism), engine=flow_env.engine,
                           timeout=self.run_timeout)

        return run_body

    # ----------------------------------------------------------------------------- outcomes

    @conformance(since="0.1")
    def test_success_is_reported_with_try_number_one(self, run: Any) -> None:
        outcome = run("""
with dag("exec_success"):
    PythonOperator(task_id="ok", python_callable=lambda: "done")
""")
        assert outcome.states == {"ok": "success"}
        assert outcome.try_numbers == {"ok": 1}
        final = [e for e in outcome.events_for("ok") if e.state in FINAL_EVENTS]
        assert [(e.state, e.try_number) for e in final] == [("success", 1)]

    @conformance(since="0.1")
    def test_failure_is_reported_failed_with_its_try_number(self, run: Any) -> None:
        outcome = run("""
def boom():
    raise RuntimeError("deliberate failure")

with dag("exec_failure"):
    PythonOperator(task_id="boom", python_callable=boom)
""")
        assert outcome.states == {"boom": "failed"}
        final = [e for e in outcome.events_for("boom") if e.state in FINAL_EVENTS]
        assert [(e.state, e.try_number) for e in final] == [("failed", 1)]

    @conformance(since="0.1")
    def test_retries_run_the_next_try_with_its_number(self, run: Any, marks: Path) -> None:
        outcome = run("""
def flaky(ti):
    mark("tries", str(ti.try_number))
    if ti.try_number < 3:
        raise RuntimeError(f"try {ti.try_number} fails")

with dag("exec_retries"):
    PythonOperator(task_id="flaky", python_callable=flaky, retries=2,
                   retry_delay=timedelta(0))
""")
        assert outcome.states == {"flaky": "success"}
        assert outcome.try_numbers == {"flaky": 3}
        assert (marks / "tries").read_text().split() == ["1", "2", "3"]
        final = [(e.state, e.try_number) for e in outcome.events_for("flaky")
                 if e.state in FINAL_EVENTS]
        assert final == [("up_for_retry", 1), ("up_for_retry", 2), ("success", 3)]

    @conformance("timeouts", since="0.1")
    def test_execution_timeout_fails_a_task_that_runs_too_long(self, run: Any) -> None:
        started = time.monotonic()
        outcome = run("""
with dag("exec_timeout"):
    PythonOperator(task_id="slow", python_callable=lambda: time.sleep(60),
                   execution_timeout=timedelta(seconds=1))
""")
        assert outcome.states == {"slow": "failed"}
        assert time.monotonic() - started < 45, "the timeout did not stop the task"

    # ------------------------------------------------------------------------ control

    @conformance("cancel", since="0.1")
    def test_cancel_stops_a_running_task(self, flow_env: FlowEnvironment, dag_files: Any,
                                         marks: Path, executors: Callable[..., Any]) -> None:
        dag = dag_files.dag(HEADER.format(marks=str(marks)) + """
def long():
    mark("started", str(os.getpid()))
    time.sleep(60)
    mark("finished")

with dag("exec_cancel"):
    PythonOperator(task_id="long", python_callable=long)
""")
        executor = executors(1)
        executor.start()
        run_id = create_dag_run(dag, flow_env.engine)
        workload = queue_task(dag, "long", run_id, flow_env.engine)
        executor.submit(workload)
        _wait_for(lambda: (marks / "started").exists(), 30, "the task never started")
        executor.cancel(workload.key)
        events = _final_events(executor, workload.key, 30)
        assert events, "no final event after cancel"
        assert events[-1].state != "success"
        assert not (marks / "finished").exists()
        assert task_states(dag, run_id, flow_env.engine)["long"][0] != "success"

    @conformance("parallelism", since="0.1")
    def test_parallelism_bound_is_honoured(self, run: Any, marks: Path) -> None:
        outcome = run("""
def busy(ti):
    mark("spans", f"{time.time()} start")
    time.sleep(1.5)
    mark("spans", f"{time.time()} end")

with dag("exec_parallelism"):
    for index in range(4):
        PythonOperator(task_id=f"busy_{index}", python_callable=busy)
""", parallelism=2)
        assert set(outcome.states.values()) == {"success"}
        assert _max_overlap((marks / "spans").read_text()) <= 2

    @conformance("isolation", since="0.1")
    def test_task_that_kills_its_own_process_is_reported_failed(self, run: Any) -> None:
        outcome = run("""
with dag("exec_suicide"):
    PythonOperator(task_id="suicide",
                   python_callable=lambda: os.kill(os.getpid(), signal.SIGKILL))
""")
        assert outcome.states == {"suicide": "failed"}
        final = [e for e in outcome.events_for("suicide") if e.state in FINAL_EVENTS]
        assert final and final[-1].state in {"failed", "lost"}

    @conformance("isolation", since="0.1")
    def test_killed_worker_never_loses_a_task(self, flow_env: FlowEnvironment, dag_files: Any,
                                              marks: Path,
                                              executors: Callable[..., Any]) -> None:
        dag = dag_files.dag(HEADER.format(marks=str(marks)) + """
def victim():
    mark("pid", str(os.getpid()))
    time.sleep(60)

with dag("exec_killed_worker"):
    PythonOperator(task_id="victim", python_callable=victim)
""")
        executor = executors(1)
        executor.start()
        run_id = create_dag_run(dag, flow_env.engine)
        workload = queue_task(dag, "victim", run_id, flow_env.engine)
        executor.submit(workload)
        # The file exists before the task has written its pid into it.
        _wait_for(lambda: (marks / "pid").exists() and bool((marks / "pid").read_text().strip()),
                  30, "the task never started")
        os.kill(int((marks / "pid").read_text().split()[0]), signal.SIGKILL)
        events = _final_events(executor, workload.key, 30)
        assert events, "the executor never reported the task whose worker was killed"
        assert events[-1].state in {"failed", "lost", "up_for_retry"}

    @conformance("adoption", since="0.1")
    def test_adoption_after_a_scheduler_restart(self, flow_env: FlowEnvironment,
                                                dag_files: Any, marks: Path,
                                                executors: Callable[..., Any]) -> None:
        dag = dag_files.dag(HEADER.format(marks=str(marks)) + """
def steady():
    mark("started")
    time.sleep(3)

with dag("exec_adoption"):
    PythonOperator(task_id="steady", python_callable=steady)
""")
        first = executors(1)
        first.start()
        run_id = create_dag_run(dag, flow_env.engine)
        workload = queue_task(dag, "steady", run_id, flow_env.engine)
        first.submit(workload)
        _wait_for(lambda: (marks / "started").exists(), 30, "the task never started")
        second = executors(1)
        second.start()
        assert second.adopt([workload.key]) == [], "the new executor did not adopt the task"
        first.shutdown(wait=False)
        events = _final_events(second, workload.key, 60)
        assert events and events[-1].state == "success"
        assert task_states(dag, run_id, flow_env.engine)["steady"] == ("success", 1)

    # ------------------------------------------------------------------------ what tasks see

    @conformance(since="0.1")
    def test_logs_are_captured_with_secrets_masked(self, run: Any, flow_env: FlowEnvironment,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        secret = "s3cr3t-conformance-pw"  # noqa: S105 - a test value to find in logs
        monkeypatch.setenv("FLOW_CONN_CONFORMANCE_API",
                           f"http://user:{secret}@example.invalid:8080/")
        outcome = run("""
from flow import Connection

def talk():
    connection = Connection.get("conformance_api")
    print(f"connecting with password {connection.password}")
    print("conformance-log-line")

with dag("exec_logs"):
    PythonOperator(task_id="talk", python_callable=talk)
""")
        assert outcome.states == {"talk": "success"}
        logs = "".join(path.read_text() for path in flow_env.log_files())
        assert "conformance-log-line" in logs
        assert secret not in logs
        assert "connecting with password ***" in logs

    @conformance(since="0.1")
    def test_xcoms_round_trip_between_tasks(self, run: Any, marks: Path) -> None:
        outcome = run("""
def produce():
    return {"numbers": [1, 2, 3], "when": datetime(2024, 5, 6, 7, 8)}

def consume(ti):
    value = ti.xcom_pull(task_ids="produce")
    mark("pulled", repr(value))
    assert value == {"numbers": [1, 2, 3], "when": datetime(2024, 5, 6, 7, 8)}

with dag("exec_xcom"):
    PythonOperator(task_id="produce", python_callable=produce) >> PythonOperator(
        task_id="consume", python_callable=consume)
""")
        assert outcome.states == {"produce": "success", "consume": "success"}
        assert "[1, 2, 3]" in (marks / "pulled").read_text()

    @conformance(since="0.1")
    def test_no_task_is_started_twice(self, flow_env: FlowEnvironment, dag_files: Any,
                                      marks: Path, executors: Callable[..., Any]) -> None:
        dag = dag_files.dag(HEADER.format(marks=str(marks)) + """
def once():
    mark("runs", str(os.getpid()))
    time.sleep(0.5)

with dag("exec_once"):
    PythonOperator(task_id="once", python_callable=once)
""")
        executor = executors(2)
        executor.start()
        run_id = create_dag_run(dag, flow_env.engine)
        workload = queue_task(dag, "once", run_id, flow_env.engine)
        executor.submit(workload)
        executor.submit(workload)  # a duplicated message, as a broker may deliver
        events: list[Any] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(
                [e for e in events if e.state in FINAL_EVENTS]) < 2:
            events += executor.events()
            time.sleep(0.05)
        assert len((marks / "runs").read_text().split()) == 1
        assert task_states(dag, run_id, flow_env.engine)["once"] == ("success", 1)


def _wait_for(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout:.0f} s")
        time.sleep(0.05)


def _final_events(executor: Any, key: Any, timeout: float) -> list[Any]:
    """The final events for ``key``, waiting up to ``timeout`` seconds for the first."""
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while not found and time.monotonic() < deadline:
        found = [e for e in executor.events() if e.key == key and e.state in FINAL_EVENTS]
        time.sleep(0.05)
    return found


def _max_overlap(spans: str) -> int:
    changes = []
    for line in spans.split("\n"):
        if line.strip():
            stamp, kind = line.split()
            changes.append((float(stamp), 1 if kind == "start" else -1))
    running = peak = 0
    for _, change in sorted(changes, key=lambda item: (item[0], item[1])):
        running += change
        peak = max(peak, running)
    return peak
