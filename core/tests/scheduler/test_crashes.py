"""A scheduler killed with SIGKILL and restarted, a task whose processes vanish (zombie), and
the one-scheduler rule on SQLite; against real processes."""

from __future__ import annotations

import os
import signal
import socket
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from flow.store.models import DagRun, Job, TaskInstance
from flow.store.session import session_scope
from flow.utils.timezone import utcnow

from .conftest import WriteDag
from .helpers import (
    ledger,
    run_scheduler_once,
    start_scheduler,
    wait_for,
)

WIDE = """
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

with DAG("wide", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    start = PythonOperator(task_id="start", python_callable=ledgered)
    for i in range(40):
        start >> PythonOperator(task_id=f"t{i}", python_callable=ledgered,
                                op_kwargs={"seconds": 0.1})
"""


def _running_jobs(engine: Engine) -> list[Job]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Job).where(Job.state == "running")))


def test_kill_9_of_the_scheduler_then_a_restart_completes_the_run_without_a_double_start(
        write_dag: WriteDag, ledger_engine: Engine) -> None:
    write_dag("wide_dag.py", WIDE)
    first = start_scheduler(FLOW__CORE__PARALLELISM="4")
    try:
        wait_for(lambda: len(ledger(ledger_engine)) >= 6, 60, "six tries in the ledger")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # A scheduler whose heartbeat is older than health_threshold is dead: its tries are adopted.
    output = run_scheduler_once(FLOW__SCHEDULER__HEALTH_THRESHOLD="2")
    rows = ledger(ledger_engine)
    assert len(rows) == 41, output
    assert len({(row.task, row.try_number) for row in rows}) == 41
    with session_scope(ledger_engine) as session:
        tis = session.scalars(select(TaskInstance)).all()
        run_state = session.scalars(select(DagRun.state)).one()
    assert {ti.state for ti in tis} == {"success"} and {ti.try_number for ti in tis} == {1}
    assert run_state == "success"


ZOMBIE = """
import os, signal, time
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator


def vanish():
    # The task takes its supervising worker down with it: nobody is left to report the try.
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


with DAG("zombie", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    PythonOperator(task_id="vanishes", python_callable=vanish)
"""


def test_zombie_detection_fails_a_task_whose_processes_died(write_dag: WriteDag, engine: Engine,
                                                            flow_home: Path) -> None:
    write_dag("zombie_dag.py", ZOMBIE)
    output = run_scheduler_once(FLOW__SCHEDULER__TASK_HEARTBEAT_TIMEOUT="3",
                                FLOW__SCHEDULER__TASK_HEARTBEAT_INTERVAL="0.5")
    with session_scope(engine) as session:
        ti = session.scalars(select(TaskInstance)).one()
        run_state = session.scalars(select(DagRun.state)).one()
    assert ti.state == "failed", output
    assert run_state == "failed"
    log = (flow_home / "logs" / "dag_id=zombie" / f"run_id={ti.run_id}" / "task_id=vanishes"
           / "attempt=1.log").read_text()
    assert "zombie: no heartbeat" in log and "task_heartbeat_timeout" in log


def test_a_second_scheduler_on_sqlite_is_refused_naming_the_first(sqlite_db: str) -> None:
    from flow.store.session import get_engine

    engine = get_engine(sqlite_db)
    first = start_scheduler()
    try:
        [job] = wait_for(lambda: _running_jobs(engine), 30, "the first scheduler's job row")
        refused = start_scheduler("--num-runs", "1")
        output, _ = refused.communicate(timeout=60)
        assert refused.returncode != 0
        assert f"host {socket.gethostname()}, pid {first.pid}" in output
        assert "SQLite allows one scheduler" in output
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    with session_scope(engine) as session:
        ended = session.get(Job, job.id)
        assert ended is not None and ended.state == "success" and ended.end_date is not None


def test_a_stale_scheduler_row_does_not_block_a_new_scheduler(sqlite_db: str) -> None:
    from flow.store.session import get_engine

    engine = get_engine(sqlite_db)
    with session_scope(engine) as session:
        session.add(Job(job_type="scheduler", state="running", hostname="gone", pid=1,
                        latest_heartbeat=utcnow() - timedelta(minutes=5)))
    output = run_scheduler_once()
    assert "already running" not in output
    assert os.path.exists(engine.url.database or "")
