"""Fixtures for the executor tests: a DAG file of misbehaving tasks, its run, a ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import LEDGER, write_dag_with_run
from sqlalchemy import Engine

DAG_SOURCE = '''
import os, signal, subprocess, time
from datetime import datetime, timedelta
from pathlib import Path
from flow import DAG, BaseOperator
from flow.operators import PythonOperator

SCRATCH = Path(os.environ["FLOW_TEST_SCRATCH"])
with (SCRATCH / "imports").open("a") as imports:  # who imported this file
    imports.write(f"{os.getpid()}\\n")

def ledger(name, seconds=0.0):
    from sqlalchemy import text
    from flow.store.session import get_engine
    started = time.time()
    time.sleep(seconds)
    with get_engine().begin() as connection:
        connection.execute(text("INSERT INTO test_ledger (task_id, try_number, started, ended) "
                                "VALUES (:t, :n, :s, :e)"),
                           {"t": name, "n": int(os.environ.get("TRY", "1")), "s": started,
                            "e": time.time()})
    return name

def fail():
    raise RuntimeError("boom")

def hard_exit():
    print("about to leave")
    os._exit(9)

def ignore_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)

def loud():
    line = "x" * (1 << 20)
    for _ in range(100):
        print(line)

def fork_and_leave():
    child = subprocess.Popen(["sleep", "60"])
    (SCRATCH / "orphan.pid").write_text(str(child.pid))

def sleepy():
    time.sleep(float(os.environ.get("SLEEP", "1.5")))

def silences_stdout():
    import logging
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    logging.getLogger("flow.task").info("logged after standard output went to /dev/null")

class HoldsThePipe(BaseOperator):
    def execute(self, context):
        child = subprocess.Popen(["sleep", "60"])
        (SCRATCH / "holder.pid").write_text(str(child.pid))
        child.wait()
    def on_kill(self):
        (SCRATCH / "on_kill").write_text("called")

with DAG("misbehaving", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="ok", python_callable=ledger, op_args=["ok"])
    PythonOperator(task_id="fails", python_callable=fail, retries=1,
                   retry_delay=timedelta(seconds=1))
    PythonOperator(task_id="hard_exit", python_callable=hard_exit)
    PythonOperator(task_id="hard_exit_retried", python_callable=hard_exit, retries=2)
    PythonOperator(task_id="ignores_sigterm", python_callable=ignore_sigterm,
                   execution_timeout=timedelta(seconds=1))
    HoldsThePipe(task_id="holds_the_pipe", execution_timeout=timedelta(seconds=1))
    PythonOperator(task_id="loud", python_callable=loud)
    PythonOperator(task_id="fork_and_leave", python_callable=fork_and_leave)
    PythonOperator(task_id="sleepy", python_callable=sleepy)
    PythonOperator(task_id="silences_stdout", python_callable=silences_stdout)
    PythonOperator(task_id="hangs", python_callable=time.sleep, op_args=[60])
    for i in range(6):
        PythonOperator(task_id=f"slot_{i}", python_callable=ledger, op_args=[f"slot_{i}", 0.3])
'''


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv("FLOW_TEST_SCRATCH", str(folder))
    return folder


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    from flow.store.session import get_engine

    engine = get_engine(db_url)
    LEDGER.create(engine, checkfirst=True)
    yield engine
    LEDGER.drop(engine, checkfirst=True)


@pytest.fixture
def dag_file(flow_home: Path, engine: Engine, scratch: Path) -> Path:
    """The DAG file of misbehaving tasks, with its DAG run created (every task state none)."""
    return write_dag_with_run(flow_home / "dags" / "misbehaving.py", DAG_SOURCE, engine)
