"""The server drops every connection (a restart, a failover, a proxy) while a run is going: the
scheduler and its worker reconnect and go on, the run completes, and no try starts twice."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import Engine, select, text

from flow.store.models import DagRun, TaskInstance
from flow.store.session import make_engine, session_scope

from .conftest import WriteDag
from .helpers import start_scheduler, wait_for

CHAIN = """
import time
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator

with DAG("drops", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    previous = None
    for i in range(8):
        task = PythonOperator(task_id=f"t{i}", python_callable=time.sleep, op_args=[0.3])
        if previous is not None:
            previous >> task
        previous = task
"""


def _drop_every_other_connection(url: str) -> int:
    """What a server restart does to its clients: every connection to this database but the
    one asking is closed by the server. Returns how many were."""
    killer = make_engine(url)
    try:
        with killer.connect() as connection:
            if killer.dialect.name == "postgresql":
                return len(connection.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
            ids = connection.scalars(text(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()")).all()
            for server_id in ids:
                connection.execute(text(f"KILL {int(server_id)}"))
            return len(ids)
    finally:
        killer.dispose()


def _states(engine: Engine) -> dict[str, tuple[str, int]]:
    with session_scope(engine) as session:
        return {row.task_id: (row.state, row.try_number) for row in session.execute(
            select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number))}


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_the_scheduler_and_its_worker_survive_the_server_dropping_their_connections(
        write_dag: WriteDag, engine: Engine, db_url: str) -> None:
    write_dag("drops.py", CHAIN)
    scheduler = start_scheduler()
    output = ""
    try:
        wait_for(lambda: _states(engine).get("t1", ("", 0))[0] in ("running", "success"), 60,
                 "t1 to start")
        assert _drop_every_other_connection(db_url) > 0
        time.sleep(0.7)
        _drop_every_other_connection(db_url)  # again, once they reconnected
        wait_for(lambda: _run_state(engine) in ("success", "failed")
                 or scheduler.poll() is not None, 90, "the run to end")
        alive = scheduler.poll() is None
    finally:
        scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=60)
    assert alive, f"the scheduler exited:\n{output[-6000:]}"
    assert _run_state(engine) == "success", f"{_states(engine)}\n{output[-6000:]}"
    # Every task ran once: a try that was lost before it started was handed out again, never
    # started a second time.
    assert _states(engine) == {f"t{i}": ("success", 1) for i in range(8)}, output[-6000:]
    assert scheduler.returncode == 0, output[-6000:]


def _run_state(engine: Engine) -> str | None:
    with session_scope(engine) as session:
        return session.scalar(select(DagRun.state).where(DagRun.dag_id == "drops"))
