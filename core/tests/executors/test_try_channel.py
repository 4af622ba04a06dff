"""A supervised try reads its upstream tasks' XComs, and the variables and connections of the
database secrets backend, through its supervisor: the values arrive, and the try's process opens
no database connection for them (an SQLAlchemy ``connect`` listener, inherited from the worker
that imported the DAG file, records every process that connects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from executor_helpers import collect, finals, queue, write_dag_with_run
from sqlalchemy import Engine, select

from flow.builtin.executors.local import LocalExecutor
from flow.store.models import XComModel

DAG_ID = "channel"
DAG_SOURCE = '''
import json, os
from datetime import datetime
from pathlib import Path
from sqlalchemy import event, text
from flow import DAG
from flow.operators import PythonOperator
from flow.store.session import get_engine

SCRATCH = Path(os.environ["FLOW_TEST_SCRATCH"])


@event.listens_for(get_engine(), "connect")
def _connected(*_):
    with (SCRATCH / "connections").open("a") as handle:
        handle.write(f"{os.getpid()}\\n")


def produce():
    return {"n": 41}


def consume(value, ti):
    return [value["n"] + 1, ti.xcom_pull(task_ids="produce")["n"],
            ti.xcom_pull(task_ids="never_ran", default="none")]


def pulls_in_thread(ti):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # another thread reads the database itself
        return pool.submit(lambda: ti.xcom_pull(task_ids="produce")["n"]).result()


def after_success(context):  # runs once the end is committed
    (SCRATCH / "callback").write_text(json.dumps(context["ti"].xcom_pull(task_ids="produce")))


def uses_secrets():
    from flow.secrets.connection import Connection
    from flow.secrets.variable import Variable

    conn = Connection.get("warehouse")
    return {"host": conn.host, "port": conn.port, "password": conn.password == "s3cret",
            "region": conn.extra_dejson.get("region"), "greeting": Variable.get("greeting"),
            "missing": Variable.get("missing", default="fallback")}


def connects():
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


with DAG("channel", schedule=None, start_date=datetime(2024, 1, 1)):
    made = PythonOperator(task_id="produce", python_callable=produce)
    PythonOperator(task_id="consume", python_callable=consume, op_args=[made.output])
    PythonOperator(task_id="called_back", python_callable=produce,
                   on_success_callback=after_success)
    PythonOperator(task_id="never_ran", python_callable=produce)
    PythonOperator(task_id="connects", python_callable=connects)
    PythonOperator(task_id="pulls_in_thread", python_callable=pulls_in_thread)
    PythonOperator(task_id="uses_secrets", python_callable=uses_secrets)
'''


@pytest.fixture
def channel_dag(flow_home: Path, engine: Engine, scratch: Path) -> Path:
    return write_dag_with_run(flow_home / "dags" / "channel.py", DAG_SOURCE, engine)


def _connected_pids(scratch: Path) -> set[int]:
    path = scratch / "connections"
    return {int(pid) for pid in path.read_text().split()} if path.exists() else set()


def _run(executor: LocalExecutor, engine: Engine, dag_file: Path, task_id: str) -> int:
    """Run ``task_id``'s first try to success; the pid of its process."""
    executor.submit(queue(engine, dag_file, DAG_ID, task_id))
    events = collect(executor, 1)
    assert finals(events)[task_id].state == "success", events
    [pid] = [e.info["pid"] for e in events if e.state == "running"]
    return int(pid)


def _xcom(engine: Engine, task_id: str) -> object:
    with engine.connect() as connection:
        return json.loads(connection.scalar(select(XComModel.value).where(
            XComModel.dag_id == DAG_ID, XComModel.task_id == task_id)))


def test_a_try_reads_secrets_of_the_database_backend_through_its_supervisor(
        engine: Engine, channel_dag: Path, scratch: Path) -> None:
    from flow.secrets.connection import Connection
    from flow.secrets.database import save_connection, save_variable
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        save_connection(Connection("warehouse", "postgres", host="db.example", port=5439,
                                   password="s3cret", extra={"region": "eu-west-1"}),
                        session=session)
        save_variable("greeting", "hello", session=session)
    executor = LocalExecutor(parallelism=2, workers=1, kill_grace=0.5)
    executor.start()
    try:
        reader = _run(executor, engine, channel_dag, "uses_secrets")
    finally:
        executor.shutdown(wait=True)
    assert _xcom(engine, "uses_secrets") == {
        "host": "db.example", "port": 5439, "password": True, "region": "eu-west-1",
        "greeting": "hello", "missing": "fallback"}
    assert reader not in _connected_pids(scratch)


def test_a_try_reads_upstream_xcoms_through_its_supervisor_without_connecting(
        engine: Engine, channel_dag: Path, scratch: Path) -> None:
    executor = LocalExecutor(parallelism=2, workers=1, kill_grace=0.5)
    executor.start()
    try:
        _run(executor, engine, channel_dag, "produce")
        consumer = _run(executor, engine, channel_dag, "consume")
        control = _run(executor, engine, channel_dag, "connects")
        called_back = _run(executor, engine, channel_dag, "called_back")
        _run(executor, engine, channel_dag, "pulls_in_thread")
    finally:
        executor.shutdown(wait=True)
    assert _xcom(engine, "consume") == [42, 41, "none"]
    assert _xcom(engine, "pulls_in_thread") == 41
    connected = _connected_pids(scratch)
    assert control in connected  # the listener sees a try that connects
    assert consumer not in connected
    # A callback runs once the try's end is committed; its reads are answered too.
    assert json.loads((scratch / "callback").read_text()) == {"n": 41}
    assert called_back not in connected
