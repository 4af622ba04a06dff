"""``kill -9`` of the scheduler at random moments during a 200-task DAG run, a restart after
each: the run completes, no task instance is lost, no try starts twice. On every metadata
database, against real ``flow scheduler`` processes.

The moments are seeded (``FLOW_CRASH_SEED`` replaces the seed, to replay a failure): 2 to 4 kills,
each once the ledger has grown past a random threshold, plus a random delay under 0.2 s so the
kill does not always land at the same step of the scheduler's loop."""

from __future__ import annotations

import os
import random
import time
import zlib
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from flow.store.models import DagRun
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import (
    assert_ran_once_and_completed,
    kill_9,
    run_scheduler_once,
    start_scheduler,
    wait_for,
)

FANOUT = 200
TASKS = FANOUT + 2
FANOUT_DAG = f"""
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

with DAG("fanout", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    start = PythonOperator(task_id="start", python_callable=ledgered)
    join = PythonOperator(task_id="join", python_callable=ledgered)
    for i in range({FANOUT}):
        start >> PythonOperator(task_id=f"t{{i:03}}", python_callable=ledgered,
                                op_kwargs={{"seconds": 0.05}}) >> join
"""
ENV = {"FLOW__CORE__PARALLELISM": "8", "FLOW__SCHEDULER__HEALTH_THRESHOLD": "2"}


def _started(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT COUNT(*) FROM ledger")).scalar_one())


def _run_finished(engine: Engine) -> bool:
    with session_scope(engine) as session:
        return bool(session.scalar(select(func.count()).select_from(DagRun)
                                   .where(DagRun.state.in_(("success", "failed")))))


def test_kill_9_at_random_moments_of_a_200_task_run_loses_nothing_and_starts_nothing_twice(
        db_url: str, write_dag: WriteDag, ledger_engine: Engine, flow_home: Path) -> None:
    seed = int(os.environ.get("FLOW_CRASH_SEED") or zlib.crc32(db_url.split(":")[0].encode()))
    rng = random.Random(seed)
    thresholds = sorted(rng.sample(range(5, FANOUT * 4 // 5), rng.randint(2, 4)))
    plan = f"seed {seed}, kills once the ledger holds {thresholds} tries"
    write_dag("fanout_dag.py", FANOUT_DAG)
    outputs, killed_at = [], []
    for threshold in thresholds:
        scheduler = start_scheduler(**ENV)
        try:
            wait_for(lambda t=threshold: _started(ledger_engine) >= t or _run_finished(
                ledger_engine), 45, f"{threshold} tries in the ledger ({plan})")
            time.sleep(rng.uniform(0, 0.2))
        finally:
            outputs.append(kill_9(scheduler))
        killed_at.append(_started(ledger_engine))
        assert not _run_finished(ledger_engine), (
            f"the run ended before kill {len(killed_at)} ({plan}; killed at {killed_at})")
    outputs.append(run_scheduler_once(**ENV))
    assert_ran_once_and_completed(ledger_engine, flow_home, TASKS,
                                  f"{plan}; killed at {killed_at}\n" + "\n".join(outputs))
