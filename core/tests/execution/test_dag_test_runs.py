"""Whole DAG runs in-process (`flow dags test`): dependency order, trigger rules, branches,
mapping, retries, callbacks and event hooks, against every metadata database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from runner_helpers import Store
from sqlalchemy import Engine

from flow import DAG, Param, task
from flow.config import Config
from flow.exceptions import ParamValidationError
from flow.execution.dag_test import run_dag_test
from flow.hookspecs import hookimpl
from flow.operators import EmptyOperator, PythonOperator
from flow.plugins import PluginManager, activate

START = datetime(2024, 1, 1)
DATE = datetime(2024, 3, 1, tzinfo=UTC)


def _fail() -> None:
    raise RuntimeError("on purpose")


def test_branch_runs_the_followed_path_and_skips_the_other(engine: Engine, plugins: Any,
                                                           store: Store) -> None:
    with DAG("branchy", schedule=None, start_date=START) as dag:
        @task.branch
        def choose() -> str:
            return "left"

        left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
        after_right = EmptyOperator(task_id="after_right")
        join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
        choose() >> [left, right]
        right >> after_right
        [left, after_right] >> join
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.ok
    assert store.states("branchy") == {"choose": "success", "left": "success",
                                       "right": "skipped", "after_right": "skipped",
                                       "join": "success"}


def test_short_circuit_skips_everything_downstream(engine: Engine, plugins: Any,
                                                   store: Store) -> None:
    with DAG("short", schedule=None, start_date=START) as dag:
        @task.short_circuit
        def gate() -> bool:
            return False

        a, b = EmptyOperator(task_id="a"), EmptyOperator(task_id="b", trigger_rule="all_done")
        gate() >> a >> b
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.ok
    assert store.states("short") == {"gate": "success", "a": "skipped", "b": "skipped"}


def test_mapping_over_an_upstream_xcom_makes_one_instance_per_element(
        engine: Engine, plugins: Any, store: Store) -> None:
    with DAG("mapped", schedule=None, start_date=START) as dag:
        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def square(value: int) -> int:
            return value * value

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        total(square.expand(value=numbers()))
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.ok
    assert result.map_indexes("square") == [0, 1, 2]
    assert [store.xcom("mapped", "square", map_index=i) for i in range(3)] == [1, 4, 9]
    assert store.xcom("mapped", "total") == 14


def test_a_zero_length_expansion_skips_the_mapped_task(engine: Engine, plugins: Any,
                                                       store: Store) -> None:
    with DAG("empty_map", schedule=None, start_date=START) as dag:
        @task
        def nothing() -> list[int]:
            return []

        @task
        def use(value: int) -> int:
            return value

        after = EmptyOperator(task_id="after")
        use.expand(value=nothing()) >> after
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.ok
    assert store.states("empty_map") == {"nothing": "success", "use": "skipped",
                                         "after": "skipped"}


def test_a_failure_propagates_upstream_failed_and_fails_the_run(engine: Engine, plugins: Any,
                                                                 store: Store) -> None:
    with DAG("failing", schedule=None, start_date=START) as dag:
        broken = PythonOperator(task_id="broken", python_callable=_fail)
        middle, leaf = EmptyOperator(task_id="middle"), EmptyOperator(task_id="leaf")
        alert = EmptyOperator(task_id="alert", trigger_rule="one_failed")
        broken >> middle >> leaf
        broken >> alert
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.state == "failed"
    assert store.states("failing") == {"broken": "failed", "middle": "upstream_failed",
                                       "leaf": "upstream_failed", "alert": "success"}
    assert [run.state for run in store.runs("failing")] == ["failed"]


ATTEMPTS: list[int] = []


def _second_time_lucky(ti: Any) -> str:
    ATTEMPTS.append(ti.try_number)
    if ti.try_number < 2:
        raise RuntimeError("first try fails")
    return "ok"


def test_a_failed_try_is_retried_after_its_delay(engine: Engine, plugins: Any,
                                                 store: Store) -> None:
    ATTEMPTS.clear()
    with DAG("retrying", schedule=None, start_date=START) as dag:
        PythonOperator(task_id="lucky", python_callable=_second_time_lucky, retries=2,
                       retry_delay=timedelta(seconds=0.5))
    started = time.monotonic()
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.ok
    assert time.monotonic() - started >= 0.5
    assert ATTEMPTS == [1, 2]
    row = store.tis("retrying")[("lucky", -1)]
    assert [t.state for t in store.tries(row.id)] == ["up_for_retry", "success"]


def test_a_bad_conf_is_refused_before_anything_is_written(engine: Engine, plugins: Any,
                                                          store: Store) -> None:
    with DAG("strict", schedule=None, start_date=START,
             params={"rows": Param(1, type="integer", minimum=1)}) as dag:
        EmptyOperator(task_id="t")
    with pytest.raises(ParamValidationError, match="rows"):
        run_dag_test(dag, DATE, conf={"rows": 0}, engine=engine, plugins=plugins)
    assert store.runs("strict") == []


def test_the_run_records_type_interval_and_conf(engine: Engine, plugins: Any,
                                                store: Store) -> None:
    with DAG("recorded", schedule="@daily", start_date=START,
             params={"who": Param("world", type="string")}) as dag:
        @task
        def greet(params: Any = None) -> str:
            return f"hello {params['who']}"

        greet()
    result = run_dag_test(dag, DATE, conf={"who": "flow"}, engine=engine, plugins=plugins)
    [run] = store.runs("recorded")
    assert (run.run_type, run.conf, run.logical_date) == ("manual", {"who": "flow"}, DATE)
    assert run.data_interval_end is not None and run.dag_hash
    assert result.run_id == run.run_id
    assert store.xcom("recorded", "greet") == "hello flow"


def test_depends_on_past_waits_for_the_previous_run(engine: Engine, plugins: Any,
                                                    store: Store) -> None:
    with DAG("past", schedule=None, start_date=START) as dag:
        PythonOperator(task_id="step", python_callable=_fail, depends_on_past=True)
    assert run_dag_test(dag, DATE, engine=engine, plugins=plugins).state == "failed"
    later = run_dag_test(dag, DATE + timedelta(days=1), engine=engine, plugins=plugins)
    assert later.state == "failed"
    assert any("depends_on_past" in note for note in later.notes)
    assert {t.task_id: t.state for t in later.tasks} == {"step": None}


def test_dag_callbacks_get_the_run_and_a_raising_one_changes_nothing(
        engine: Engine, plugins: Any) -> None:
    seen: list[str] = []

    def record(context: dict[str, Any]) -> None:
        seen.append(f"{context['dag_run'].state}: {context['reason']}")

    def explode(context: dict[str, Any]) -> None:
        raise ValueError("callback bug")

    with DAG("callbacks", schedule=None, start_date=START,
             on_failure_callback=[explode, record]) as dag:
        PythonOperator(task_id="broken", python_callable=_fail)
    result = run_dag_test(dag, DATE, engine=engine, plugins=plugins)
    assert result.state == "failed"
    assert seen == ["failed: failed"]


class RaisingListener:
    @hookimpl
    def flow_task_instance_state_changed(self, ti: Any, previous: str | None,
                                         current: str) -> None:
        raise RuntimeError("listener bug")


class RecordingListener:
    def __init__(self) -> None:
        self.transitions: list[tuple[str, str | None, str]] = []
        self.runs: list[str] = []

    @hookimpl
    def flow_task_instance_state_changed(self, ti: Any, previous: str | None,
                                         current: str) -> None:
        self.transitions.append((ti.task_id, previous, current))

    @hookimpl
    def flow_dag_run_state_changed(self, run: Any, previous: str | None, current: str) -> None:
        self.runs.append(current)


def test_an_event_listener_that_raises_does_not_break_the_run(
        engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    manager = PluginManager(Config()).load()
    recorder = RecordingListener()
    manager.register(RaisingListener(), "raising-listener")
    manager.register(recorder, "recording-listener")
    with DAG("listened", schedule=None, start_date=START) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    with activate(manager):
        result = run_dag_test(dag, DATE, engine=engine)
    assert result.ok
    assert recorder.transitions == [
        ("a", None, "queued"), ("a", "queued", "running"), ("a", "running", "success"),
        ("b", None, "queued"), ("b", "queued", "running"), ("b", "running", "success")]
    assert recorder.runs == ["running", "success"]
    assert "plugin=raising-listener" in caplog.text
