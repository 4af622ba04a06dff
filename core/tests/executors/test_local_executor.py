"""The local executor against real processes and real databases: outcomes, tries, crashes,
timeouts, output, children, cancel, parallelism, duplicates, heartbeats."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import (
    children,
    collect,
    finals,
    fork_server_of,
    ledger_rows,
    local_executor,
    max_concurrency,
    process_alive,
    queue,
    ti_row,
    tries,
)
from sqlalchemy import Engine

from flow.builtin.executors.local import LocalExecutor
from flow.execution.supervisor import DEFAULT_SPARES
from flow.execution.workload import TaskEvent

DAG_ID = "misbehaving"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def executor(dag_file: Path) -> Iterator[LocalExecutor]:
    with local_executor(parallelism=4) as executor:
        yield executor


def _log(engine: Engine, task_id: str, try_number: int = 1) -> str:
    from flow.execution.logs import base_log_folder, log_path

    row = ti_row(engine, DAG_ID, task_id)
    return log_path(base_log_folder(), DAG_ID, row.run_id, task_id, -1, try_number).read_text()


def test_success_and_failure_are_reported_with_their_try_number(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
    executor.submit(queue(engine, dag_file, DAG_ID, "fails"))
    events = collect(executor, 2)
    outcome = finals(events)
    assert (outcome["ok"].state, outcome["ok"].try_number) == ("success", 1)
    assert (outcome["fails"].state, outcome["fails"].try_number) == ("up_for_retry", 1)
    assert {(e.key.task_id, e.state) for e in events if e.state == "running"} == {
        ("ok", "running"), ("fails", "running")}
    executor.submit(queue(engine, dag_file, DAG_ID, "fails", try_number=2))
    retried = finals(collect(executor, 1))["fails"]
    assert (retried.state, retried.try_number) == ("failed", 2)
    row = ti_row(engine, DAG_ID, "fails")
    assert (row.state, row.try_number) == ("failed", 2)
    assert [(t.try_number, t.state) for t in tries(engine, row.id)] == [
        (1, "up_for_retry"), (2, "failed")]
    assert "RuntimeError: boom" in (retried.info.get("error") or "")
    assert ti_row(engine, DAG_ID, "ok").state == "success"


def test_a_task_that_exits_hard_is_failed_by_its_supervisor_with_the_reason_in_its_log(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "hard_exit"))
    executor.submit(queue(engine, dag_file, DAG_ID, "hard_exit_retried"))
    outcome = finals(collect(executor, 2))
    assert outcome["hard_exit"].state == "failed"
    assert outcome["hard_exit_retried"].state == "up_for_retry"
    assert "exited with code 9" in outcome["hard_exit"].info["reason"]
    log = _log(engine, "hard_exit")
    assert "about to leave" in log
    assert "exited with code 9 without reporting a state" in log
    row = ti_row(engine, DAG_ID, "hard_exit")
    assert row.state == "failed"
    assert "exited with code 9" in (tries(engine, row.id)[0].error or "")
    assert ti_row(engine, DAG_ID, "hard_exit_retried").next_retry_at is not None


def test_workers_survive_a_task_that_crashes(executor: LocalExecutor, engine: Engine,
                                             dag_file: Path) -> None:
    workers = executor.worker_pids()
    executor.submit(queue(engine, dag_file, DAG_ID, "hard_exit"))
    collect(executor, 1)
    executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
    assert finals(collect(executor, 1))["ok"].state == "success"
    assert executor.worker_pids() == workers


@sqlite_only
def test_execution_timeout_kills_a_task_that_ignores_sigterm(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    started = time.monotonic()
    executor.submit(queue(engine, dag_file, DAG_ID, "ignores_sigterm"))
    event = finals(collect(executor, 1, timeout=10))["ignores_sigterm"]
    assert event.state == "failed"
    assert time.monotonic() - started < 5
    assert "was killed by SIGKILL" in event.info["exit"]
    assert "execution_timeout of 1 seconds exceeded" in _log(engine, "ignores_sigterm")


@sqlite_only
def test_execution_timeout_kills_a_task_whose_child_holds_its_output(
        executor: LocalExecutor, engine: Engine, dag_file: Path, scratch: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "holds_the_pipe"))
    event = finals(collect(executor, 1, timeout=10))["holds_the_pipe"]
    assert event.state == "failed"
    assert "execution_timeout of 1 seconds" in (event.info.get("error") or "")
    assert (scratch / "on_kill").read_text() == "called"
    holder = int((scratch / "holder.pid").read_text())
    assert not process_alive(holder)


@sqlite_only
def test_a_task_printing_100_mb_succeeds_with_its_output_streamed_to_the_log(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "loud"))
    event = finals(collect(executor, 1, timeout=60))["loud"]
    assert event.state == "success"
    assert os.path.getsize(event.info["log_path"]) > 100 * (1 << 20)
    # The child's peak memory stays far below its output: lines go to the file one by one.
    assert event.info["max_rss_kb"] < 60 * 1024 + _worker_rss_kb(executor)


@sqlite_only
def test_a_task_that_points_its_standard_output_elsewhere_still_logs_to_its_log(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "silences_stdout"))
    assert finals(collect(executor, 1))["silences_stdout"].state == "success"
    log = _log(engine, "silences_stdout")
    assert "logged after standard output went to /dev/null" in log
    assert "marking task as SUCCESS" in log


def _worker_rss_kb(executor: LocalExecutor) -> int:
    [pid] = executor.worker_pids()
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@sqlite_only
def test_a_task_that_forks_children_and_exits_succeeds_and_leaves_no_process(
        executor: LocalExecutor, engine: Engine, dag_file: Path, scratch: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "fork_and_leave"))
    assert finals(collect(executor, 1))["fork_and_leave"].state == "success"
    orphan = int((scratch / "orphan.pid").read_text())
    deadline = time.monotonic() + 2
    while process_alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(orphan)


@sqlite_only
def test_cancel_stops_a_running_task(executor: LocalExecutor, engine: Engine,
                                     dag_file: Path) -> None:
    workload = queue(engine, dag_file, DAG_ID, "hangs")
    executor.submit(workload)
    events = []
    while not any(e.state == "running" for e in events):
        executor.wait_for_events(10)
        events += executor.events()
    started = time.monotonic()
    executor.cancel(workload.key)
    event = finals(collect(executor, 1))["hangs"]
    assert event.state == "failed"
    assert time.monotonic() - started < 3
    assert ti_row(engine, DAG_ID, "hangs").state == "failed"
    assert "was asked to stop (SIGTERM)" in (event.info.get("error") or "")


@sqlite_only
def test_cancel_of_a_queued_workload_reports_it_lost_without_running_it(
        engine: Engine, dag_file: Path) -> None:
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        executor.submit(queue(engine, dag_file, DAG_ID, "sleepy"))
        waiting = queue(engine, dag_file, DAG_ID, "ok")
        executor.submit(waiting)
        executor.cancel(waiting.key)
        outcome = finals(collect(executor, 2))
    finally:
        executor.shutdown(wait=False)
    assert outcome["ok"].state == "lost"
    assert ledger_rows(engine) == []


def test_parallelism_bounds_the_tasks_running_at_once(engine: Engine, dag_file: Path) -> None:
    executor = LocalExecutor(parallelism=2, workers=2, kill_grace=0.5)
    executor.start()
    try:
        for i in range(6):
            executor.submit(queue(engine, dag_file, DAG_ID, f"slot_{i}"))
        outcome = finals(collect(executor, 6))
    finally:
        executor.shutdown(wait=True)
    assert {e.state for e in outcome.values()} == {"success"}
    rows = ledger_rows(engine)
    assert len(rows) == 6
    assert max_concurrency(rows) == 2


def test_a_duplicate_submit_is_refused_and_the_try_runs_once(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    workload = queue(engine, dag_file, DAG_ID, "ok")
    executor.submit(workload)
    executor.submit(workload)
    events = collect(executor, 2)
    assert sorted(e.state for e in events if e.state != "running") == ["refused", "success"]
    executor.submit(workload)  # a late redelivery: the database refuses it
    late = finals(collect(executor, 1))["ok"]
    assert late.state == "refused"
    assert "success at try 1" in late.info["message"]
    assert [(r.task_id, r.try_number) for r in ledger_rows(engine)] == [("ok", 1)]


@sqlite_only
def test_a_running_task_heartbeats(engine: Engine, dag_file: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__SCHEDULER__TASK_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("SLEEP", "1.5")
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        executor.submit(queue(engine, dag_file, DAG_ID, "sleepy"))
        beats = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = ti_row(engine, DAG_ID, "sleepy")
            if row.state == "running":
                beats.add(row.last_heartbeat_at)
            elif row.state == "success":
                break
            time.sleep(0.1)
        assert finals(collect(executor, 1))["sleepy"].state == "success"
    finally:
        executor.shutdown()
    assert len(beats) >= 4


@sqlite_only
def test_a_workload_for_a_task_not_in_the_file_fails_with_the_reason_in_its_log(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    from flow.execution.workload import TaskWorkload

    workload = queue(engine, dag_file, DAG_ID, "ok")
    missing = TaskWorkload(dag_id="nowhere", run_id=workload.run_id, task_id="ok",
                           try_number=1, dag_file=str(dag_file))
    executor.submit(missing)
    event = finals(collect(executor, 1))["ok"]
    assert event.state == "refused"
    assert "DAG 'nowhere' not found" in event.info["message"]
    assert ti_row(engine, DAG_ID, "ok").state == "queued"


def test_a_queued_try_that_cannot_start_is_failed_once_and_announced(
        engine: Engine, dag_file: Path, tmp_path: Path) -> None:
    from flow.execution.supervisor import fail_unstartable
    from flow.plugins import PluginManager

    heard: list[tuple[str, int, str | None, str]] = []

    class Listener:
        def flow_task_instance_state_changed(self, ti, previous, current):
            heard.append((ti.task_id, ti.try_number, previous, current))

    plugins = PluginManager()
    plugins.register(Listener(), name="listener")
    workload = queue(engine, dag_file, DAG_ID, "ok", try_number=2)

    first = fail_unstartable(engine, workload, "task 'ok' not found", str(tmp_path), plugins)
    again = fail_unstartable(engine, workload, "task 'ok' not found", str(tmp_path), plugins)

    assert (first, again) == ("failed", None)  # a duplicate delivery changes nothing
    assert ti_row(engine, DAG_ID, "ok").state == "failed"
    assert heard == [("ok", 2, "queued", "failed")]


@sqlite_only
def test_a_changed_dag_file_is_imported_again(executor: LocalExecutor, engine: Engine,
                                              dag_file: Path) -> None:
    executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
    collect(executor, 1)
    source = dag_file.read_text().replace('op_args=["ok"]', 'op_args=["ok-edited"]')
    dag_file.write_text(source)
    os.utime(dag_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    executor.submit(queue(engine, dag_file, DAG_ID, "ok", try_number=2))
    assert finals(collect(executor, 1))["ok"].state == "success"
    assert sorted(r.task_id for r in ledger_rows(engine)) == ["ok", "ok-edited"]


def _importers(scratch: Path) -> list[int]:
    path = scratch / "imports"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


@sqlite_only
def test_a_prepared_dag_file_is_imported_by_the_fork_server_before_its_first_try(
        engine: Engine, dag_file: Path, scratch: Path) -> None:
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        [worker] = executor.worker_pids()
        server = fork_server_of(worker)
        assert server not in _importers(scratch)
        executor.prepare(str(dag_file), None)
        deadline = time.monotonic() + 10
        while server not in _importers(scratch):
            assert time.monotonic() < deadline, "the fork server did not import the file"
            time.sleep(0.01)
        executor.prepare(str(dag_file), None)  # the same version again: nothing to do
        executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
        assert finals(collect(executor, 1))["ok"].state == "success"
        # the try ran the DAG its fork server had loaded: nobody imported the file again,
        # and the worker, which holds the database, never ran the file's code
        assert _importers(scratch).count(server) == 1
        assert worker not in _importers(scratch)
        assert len(_importers(scratch)) == 2  # this test's own load, and the server's
    finally:
        executor.shutdown(wait=True)


@sqlite_only
def test_shutdown_without_wait_ends_running_tasks(engine: Engine, dag_file: Path) -> None:
    executor = LocalExecutor(parallelism=2, workers=1, kill_grace=0.5)
    executor.start()
    executor.submit(queue(engine, dag_file, DAG_ID, "hangs"))
    events = []
    while not any(e.state == "running" for e in events):
        executor.wait_for_events(10)
        events += executor.events()
    started = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - started < 3
    assert finals(executor.events())["hangs"].state == "failed"
    assert ti_row(engine, DAG_ID, "hangs").state == "failed"


def test_wait_for_events_returns_as_soon_as_a_task_ends(
        executor: LocalExecutor, engine: Engine, dag_file: Path) -> None:
    assert executor.wait_for_events(0.05) is False
    executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
    collect(executor, 1)
    assert executor.events() == []
    assert executor.wait_for_events(0) is False


def _wait_for_spares(worker: int, count: int, tries: set[int],
                     timeout: float = 10.0) -> set[int]:
    """The ``count`` children of an idle worker's fork server once the processes of ``tries``
    are reaped: the spares forked ahead of the next tries."""
    server = fork_server_of(worker)
    deadline = time.monotonic() + timeout
    while len(forked := children(server)) != count or forked & tries:
        assert time.monotonic() < deadline, f"fork server {server} has children {forked}"
        time.sleep(0.01)
    return forked


def _pid(events: list[TaskEvent], state: str = "running") -> int:
    [event] = [e for e in events if e.state == state]
    return int(event.info["pid"])


def test_an_idle_worker_forks_the_next_tries_processes_ahead_and_reaps_them_at_shutdown(
        engine: Engine, dag_file: Path) -> None:
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        [worker] = executor.worker_pids()
        server = fork_server_of(worker)
        executor.submit(queue(engine, dag_file, DAG_ID, "ok"))
        events = collect(executor, 1)
        assert finals(events)["ok"].state == "success"
        # forked by the fork server, with the DAG imported, several at once
        spares = _wait_for_spares(worker, DEFAULT_SPARES, tries={_pid(events)})
        executor.submit(queue(engine, dag_file, DAG_ID, "slot_0"))
        events = collect(executor, 1)
        assert finals(events)["slot_0"].state == "success"
        used = _pid(events)
        assert used in spares
        assert [(r.task_id, r.try_number) for r in ledger_rows(engine)] == [
            ("ok", 1), ("slot_0", 1)]
        # the others wait for the next tries, and a new one takes the used one's place
        left = _wait_for_spares(worker, DEFAULT_SPARES, tries={used})
        assert spares - {used} < left
    finally:
        executor.shutdown(wait=True)
    assert not process_alive(worker)
    assert not process_alive(server)
    assert not any(process_alive(pid) for pid in left)


@pytest.mark.parametrize("spares", [0, 1])
def test_spare_children_sets_how_many_an_idle_worker_keeps(
        engine: Engine, dag_file: Path, spares: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__LOCAL_EXECUTOR__SPARE_CHILDREN", str(spares))
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        [worker] = executor.worker_pids()
        for task_id in ("ok", "slot_0"):
            executor.submit(queue(engine, dag_file, DAG_ID, task_id))
            events = collect(executor, 1)
            assert finals(events)[task_id].state == "success"
            # with one spare, the try ran in it and the next one is forked in its place
            kept = _wait_for_spares(worker, spares, tries={_pid(events)})
            time.sleep(0.2)  # and no more than that
            assert children(fork_server_of(worker)) == kept
    finally:
        executor.shutdown(wait=True)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_waits_for_its_running_try_without_spinning(engine: Engine,
                                                             dag_file: Path) -> None:
    """While its one try sleeps, a worker has nothing to do: it must block, not poll. (A
    loop that spins shows as a whole core of CPU time here.)"""
    executor = LocalExecutor(parallelism=1, workers=1, kill_grace=0.5)
    executor.start()
    try:
        [worker] = executor.worker_pids()
        executor.submit(queue(engine, dag_file, DAG_ID, "ok"))  # the DAG imported, a spare
        collect(executor, 1)
        before, began = _cpu_seconds(worker), time.monotonic()
        executor.submit(queue(engine, dag_file, DAG_ID, "sleepy"))  # sleeps 1.5 s
        assert finals(collect(executor, 1))["sleepy"].state == "success"
        used, elapsed = _cpu_seconds(worker) - before, time.monotonic() - began
    finally:
        executor.shutdown(wait=True)
    assert elapsed >= 1.5
    assert used < 0.3 * elapsed, f"the worker used {used:.2f} s of CPU in {elapsed:.2f} s"
