"""Two schedulers at once on PostgreSQL and MariaDB over many catch-up runs: no duplicate run,
no try queued or started twice, pool limits never exceeded."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import Engine, func, select

from flow.scheduling.pools import set_pool
from flow.store.models import DagRun, Job, TaskInstance, TaskInstanceTry
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import ledger, start_scheduler, wait_for
from .test_scheduler_runs import _most_at_once

CATCHUP = """
from datetime import datetime, timedelta, timezone
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
with DAG("catchup", schedule="@hourly", start_date=start, end_date=start + timedelta(hours=29),
         catchup=True, max_active_runs=6,
         is_paused_upon_creation=False):
    first = PythonOperator(task_id="first", python_callable=ledgered, pool="three")
    for i in range(4):
        first >> PythonOperator(task_id=f"t{i}", python_callable=ledgered, pool="three",
                                op_kwargs={"seconds": 0.05})
"""
RUNS, TASKS_PER_RUN, POOL_SLOTS = 30, 5, 3


def _successful_runs(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(DagRun)
                                  .where(DagRun.state == "success")) or 0)


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_two_schedulers_share_the_work_without_duplicates_or_pool_overflow(
        write_dag: WriteDag, ledger_engine: Engine) -> None:
    write_dag("catchup_dag.py", CATCHUP)
    with session_scope(ledger_engine) as session:
        set_pool(session, "three", POOL_SLOTS)
    schedulers = [start_scheduler(FLOW__CORE__PARALLELISM="4") for _ in range(2)]
    try:
        wait_for(lambda: _successful_runs(ledger_engine) >= RUNS, 120, f"{RUNS} runs")
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=60)[0] for process in schedulers]
    rows = ledger(ledger_engine)
    assert len(rows) == RUNS * TASKS_PER_RUN, outputs
    assert len({(r.run_id, r.task, r.try_number) for r in rows}) == len(rows)
    assert _most_at_once([(r.started, r.ended) for r in rows]) <= POOL_SLOTS
    with session_scope(ledger_engine) as session:
        runs = session.scalars(select(DagRun)).all()
        tis = session.scalars(select(TaskInstance)).all()
        tries = session.scalar(select(func.count()).select_from(TaskInstanceTry))
        jobs = session.scalars(select(Job)).all()
    assert len(runs) == len({run.logical_date for run in runs}) == RUNS
    assert {ti.try_number for ti in tis} == {1} and tries == RUNS * TASKS_PER_RUN
    # Both schedulers did work, and both ended cleanly.
    assert len({ti.queued_by_job_id for ti in tis}) == 2
    assert {job.state for job in jobs} == {"success"}
