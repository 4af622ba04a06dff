"""One try of one task instance: guarded transitions, retries, timeouts, callbacks, logs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import Store, queue_task, requeue
from sqlalchemy import Engine

from flow import DAG, BaseOperator
from flow.exceptions import TaskFailedNoRetry, TaskSkipped
from flow.execution.task_runner import run_task
from flow.operators import BashOperator, PythonOperator
from flow.store.models import TaskInstanceTry

START = datetime(2024, 1, 1)
CALLS: list[str] = []


class CountingOperator(BaseOperator):
    def execute(self, context: dict[str, Any]) -> str:
        CALLS.append(self.task_id)
        return "done"


def _dag(dag_id: str = "runner") -> DAG:
    return DAG(dag_id, schedule=None, start_date=START)


def test_a_duplicate_start_of_the_same_try_is_refused(engine: Engine, plugins: Any,
                                                       store: Store) -> None:
    CALLS.clear()
    with _dag() as dag:
        CountingOperator(task_id="once")
    queue_task(engine, dag, "once")
    first = run_task(dag, "once", "manual__test", try_number=1, engine=engine, plugins=plugins)
    second = run_task(dag, "once", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert first.started and first.state == "success"
    assert not second.started
    assert "refused to start try 1" in second.message
    assert "success at try 1, not queued" in second.message
    assert CALLS == ["once"]


def test_a_try_with_a_recorded_start_cannot_start_again(engine: Engine, plugins: Any) -> None:
    CALLS.clear()
    with _dag() as dag:
        CountingOperator(task_id="once")
    ti_id = queue_task(engine, dag, "once")
    from flow.store.session import session_scope

    with session_scope(engine) as session:  # another worker already started try 1
        session.add(TaskInstanceTry(task_instance_id=ti_id, try_number=1, state="running"))
    result = run_task(dag, "once", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert not result.started
    assert "already started" in result.message
    assert CALLS == []


def test_a_late_start_for_an_older_try_is_refused(engine: Engine, plugins: Any) -> None:
    with _dag() as dag:
        CountingOperator(task_id="once")
    queue_task(engine, dag, "once", try_number=2)
    result = run_task(dag, "once", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert not result.started
    assert "queued at try 2, not queued at try 1" in result.message


def _always_fails() -> None:
    raise RuntimeError("boom")


def test_retries_back_off_exponentially(engine: Engine, plugins: Any, store: Store) -> None:
    with _dag() as dag:
        PythonOperator(task_id="flaky", python_callable=_always_fails, retries=3,
                       retry_delay=timedelta(seconds=10), retry_exponential_backoff=True)
    ti_id = queue_task(engine, dag, "flaky")
    delays = []
    for try_number in (1, 2, 3):
        if try_number > 1:
            requeue(engine, ti_id, try_number)
        result = run_task(dag, "flaky", "manual__test", try_number=try_number, engine=engine,
                          plugins=plugins)
        assert result.state == "up_for_retry"
        row = store.tis("runner")[("flaky", -1)]
        delays.append(round((row.next_retry_at - row.end_date).total_seconds()))
    assert delays == [10, 20, 40]
    requeue(engine, ti_id, 4)
    last = run_task(dag, "flaky", "manual__test", try_number=4, engine=engine, plugins=plugins)
    assert last.state == "failed"
    tries = store.tries(ti_id)
    assert [t.state for t in tries] == ["up_for_retry"] * 3 + ["failed"]
    assert tries[-1].error == "RuntimeError: boom"


def _no_retry() -> None:
    raise TaskFailedNoRetry("the input is corrupt")


def _skip() -> None:
    raise TaskSkipped("nothing to do today")


@pytest.mark.parametrize(("callable_", "state"), [(_no_retry, "failed"), (_skip, "skipped")])
def test_task_exceptions_end_the_try_in_their_state(engine: Engine, plugins: Any,
                                                    callable_: Any, state: str) -> None:
    with _dag() as dag:
        PythonOperator(task_id="t", python_callable=callable_, retries=5)
    queue_task(engine, dag, "t")
    result = run_task(dag, "t", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert result.state == state


class SleepyOperator(BaseOperator):
    killed: list[str] = []

    def execute(self, context: dict[str, Any]) -> None:
        time.sleep(5)

    def on_kill(self) -> None:
        SleepyOperator.killed.append(self.task_id)


def test_execution_timeout_stops_the_task_and_calls_on_kill(engine: Engine, plugins: Any) -> None:
    SleepyOperator.killed.clear()
    with _dag() as dag:
        SleepyOperator(task_id="sleepy", execution_timeout=timedelta(seconds=0.3))
    queue_task(engine, dag, "sleepy")
    started = time.monotonic()
    result = run_task(dag, "sleepy", "manual__test", try_number=1, engine=engine,
                      plugins=plugins)
    assert time.monotonic() - started < 3
    assert result.state == "failed"
    assert "execution_timeout" in (result.error or "")
    assert SleepyOperator.killed == ["sleepy"]


def _raise_in_callback(context: dict[str, Any]) -> None:
    raise ValueError("callback bug")


def test_a_raising_callback_is_logged_and_the_task_still_succeeds(engine: Engine,
                                                                   plugins: Any) -> None:
    with _dag() as dag:
        CountingOperator(task_id="t", on_success_callback=_raise_in_callback)
    queue_task(engine, dag, "t")
    result = run_task(dag, "t", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert result.state == "success"
    log = Path(result.log_path or "").read_text()
    assert "on_success_callback" in log and "callback bug" in log


def _talk() -> None:
    import logging

    from flow import Connection

    conn = Connection.get("vault")
    print(f"stdout says the password is {conn.password}")
    logging.getLogger("user.code").info("logging says %s", conn.password)


def test_log_file_holds_output_and_masks_secrets(engine: Engine, plugins: Any,
                                                 flow_home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_VAULT", "http://me:hunter2-canary@vault:8200")
    with _dag("logs") as dag:
        PythonOperator(task_id="talk", python_callable=_talk)
        BashOperator(task_id="shell", bash_command="echo from bash; echo to stderr >&2")
    queue_task(engine, dag, "talk")
    result = run_task(dag, "talk", "manual__test", try_number=1, engine=engine,
                      plugins=plugins)
    expected = (flow_home / "logs" / "dag_id=logs" / "run_id=manual__test" / "task_id=talk"
                / "attempt=1.log")
    assert result.log_path == str(expected)
    text = expected.read_text()
    assert "stdout says the password is ***" in text
    assert "logging says ***" in text
    assert "hunter2-canary" not in text


def test_bash_output_lines_land_in_the_log(engine: Engine, plugins: Any) -> None:
    with _dag("bash_logs") as dag:
        BashOperator(task_id="shell", bash_command="echo from bash; echo to stderr >&2")
    queue_task(engine, dag, "shell")
    result = run_task(dag, "shell", "manual__test", try_number=1, engine=engine,
                      plugins=plugins)
    text = Path(result.log_path or "").read_text()
    assert "from bash" in text and "to stderr" in text


def test_rendered_fields_are_stored_with_secrets_masked(engine: Engine, plugins: Any,
                                                        store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_API", "http://me:sw0rdfish-canary@api:80")
    with _dag("rendered") as dag:
        BashOperator(task_id="shell",
                     bash_command="echo {{ ds }} {{ conn.api.password }} >/dev/null")
    queue_task(engine, dag, "shell")
    run_task(dag, "shell", "manual__test", try_number=1, engine=engine, plugins=plugins)
    rendered = store.tis("rendered")[("shell", -1)].rendered_fields
    assert rendered["bash_command"] == "echo 2024-01-01 *** >/dev/null"


def test_a_runner_failure_outside_the_task_never_leaves_the_try_running(
        engine: Engine, plugins: Any, store: Store) -> None:
    with _dag("lost") as dag:
        CountingOperator(task_id="t")
    queue_task(engine, dag, "t")
    del dag.task_dict["t"]  # the DAG file changed under the worker: the task is gone
    result = run_task(dag, "t", "manual__test", try_number=1, engine=engine, plugins=plugins)
    assert result.state == "failed"
    assert store.states("lost") == {"t": "failed"}
    assert "KeyError" in (result.error or "")
