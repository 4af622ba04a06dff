"""Runs from timetables: catchup on and off, start and end dates, max_active_runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from flow.plugins import current
from flow.scheduling.runs import RunManager
from flow.store.models import DagModel, DagRun
from flow.store.session import session_scope

from .conftest import WriteDag

DAG = """
from datetime import datetime, timedelta, timezone
from flow import DAG
from flow.operators import EmptyOperator

start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
with DAG("hourly", schedule="@hourly", start_date=start, catchup={catchup},
         max_active_runs={max_active_runs}, is_paused_upon_creation=False):
    EmptyOperator(task_id="a")
"""


def _logical_dates(engine: Engine) -> list[datetime]:
    with session_scope(engine) as session:
        return list(session.scalars(select(DagRun.logical_date).order_by(DagRun.logical_date)))


def test_catchup_creates_a_run_per_missed_interval_and_records_the_next(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    write_dag("hourly_dag.py", DAG.format(catchup=True, max_active_runs=16))
    parse()
    RunManager(engine, current()).create_due_runs()
    dates = _logical_dates(engine)
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert dates == [this_hour - timedelta(hours=h) for h in range(5, 0, -1)]
    with session_scope(engine) as session:
        dag = session.get(DagModel, "hourly")
        assert dag is not None and dag.next_dagrun == this_hour
        assert dag.next_dagrun_create_after == this_hour + timedelta(hours=1)
    RunManager(engine, current()).create_due_runs()
    assert len(_logical_dates(engine)) == 5  # nothing new is due


def test_without_catchup_only_the_latest_interval_runs(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    write_dag("hourly_dag.py", DAG.format(catchup=False, max_active_runs=16))
    parse()
    RunManager(engine, current()).create_due_runs()
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert _logical_dates(engine) == [this_hour - timedelta(hours=1)]


def test_max_active_runs_bounds_the_runs_created(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    write_dag("hourly_dag.py", DAG.format(catchup=True, max_active_runs=2))
    parse()
    manager = RunManager(engine, current())
    manager.create_due_runs()
    assert len(_logical_dates(engine)) == 2
    assert manager.start_queued_runs() == 2


def test_a_paused_dag_gets_no_runs(write_dag: WriteDag, parse: Callable[[], None],
                                   engine: Engine) -> None:
    write_dag("hourly_dag.py", DAG.format(catchup=True, max_active_runs=16)
              .replace("is_paused_upon_creation=False", "is_paused_upon_creation=True"))
    parse()
    RunManager(engine, current()).create_due_runs()
    assert _logical_dates(engine) == []
