"""Soak (minutes, opt-in with ``-m soak``): two schedulers on PostgreSQL and MariaDB over many
catch-up runs while one of them is killed with SIGKILL at random moments and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import Engine, select

from flow.scheduling.pools import set_pool
from flow.store.models import DagRun, TaskInstance
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import ledger, start_scheduler
from .test_scheduler_runs import _most_at_once

HOURS = 120
SOAK = f"""
from datetime import datetime, timedelta, timezone
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(
    hours={HOURS})
with DAG("soak", schedule="@hourly", start_date=start,
         end_date=start + timedelta(hours={HOURS - 1}), catchup=True, max_active_runs=8,
         is_paused_upon_creation=False):
    first = PythonOperator(task_id="first", python_callable=ledgered, pool="three")
    for i in range(4):
        first >> PythonOperator(task_id=f"t{{i}}", python_callable=ledgered, pool="three",
                                op_kwargs={{"seconds": 0.02}})
"""


@pytest.mark.soak
@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_schedulers_killed_at_random_lose_nothing_and_start_nothing_twice(
        write_dag: WriteDag, ledger_engine: Engine) -> None:
    write_dag("soak_dag.py", SOAK)
    with session_scope(ledger_engine) as session:
        set_pool(session, "three", 3)
    env = {"FLOW__CORE__PARALLELISM": "4", "FLOW__SCHEDULER__HEALTH_THRESHOLD": "3",
           "FLOW__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "1",
           "FLOW__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "10"}
    schedulers: list[subprocess.Popen[str]] = [start_scheduler(**env) for _ in range(2)]
    deadline = time.monotonic() + float(os.environ.get("FLOW_SOAK_SECONDS", "300"))
    rng = random.Random(7)
    try:
        while time.monotonic() < deadline and _finished(ledger_engine) < HOURS:
            time.sleep(rng.uniform(2, 8))
            victim = rng.randrange(len(schedulers))
            schedulers[victim].send_signal(signal.SIGKILL)
            schedulers[victim].communicate()
            schedulers[victim] = start_scheduler(**env)
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        for process in schedulers:
            process.communicate(timeout=120)
    assert _finished(ledger_engine) == HOURS
    rows = ledger(ledger_engine)
    assert len({(r.run_id, r.task, r.try_number) for r in rows}) == len(rows)
    assert _most_at_once([(r.started, r.ended or r.started) for r in rows]) <= 3
    with session_scope(ledger_engine) as session:
        runs = session.scalars(select(DagRun)).all()
        states = {ti.state for ti in session.scalars(select(TaskInstance))}
    assert len(runs) == len({run.logical_date for run in runs}) == HOURS
    assert states == {"success"}


def _finished(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.scalars(select(DagRun.id).where(DagRun.state == "success")).all())
