"""A local executor worker's fork server: where its tries come from, and what happens when the
worker or the server dies under running tries."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from executor_helpers import (
    children,
    collect,
    finals,
    fork_server_of,
    local_executor,
    process_alive,
    queue,
    ti_row,
    write_dag_with_run,
)
from sqlalchemy import Engine, text

from flow.builtin.executors.local import LocalExecutor

DAG_ID = "forked"

SOURCE = '''
import os, sys, time, json
from datetime import datetime
from pathlib import Path
from flow import DAG
from flow.operators import PythonOperator

SCRATCH = Path(os.environ["FLOW_TEST_SCRATCH"])

def where():
    # what the try's process inherited from the process it was forked from
    (SCRATCH / "where.json").write_text(json.dumps({
        "ppid": os.getppid(), "sqlalchemy": "sqlalchemy" in sys.modules}))

def gives():
    return 41

def takes(value, ti):
    from flow.secrets.connection import Connection
    from flow.secrets.variable import Variable

    ti.xcom_push("seen", value)
    # the pull (rendering op_args), a push, a variable and a connection of the database
    # secrets backend, all through the supervisor: no SQLAlchemy in this process
    (SCRATCH / "takes.json").write_text(json.dumps({
        "ppid": os.getppid(), "value": value, "variable": Variable.get("greeting"),
        "host": Connection.get("warehouse").host, "sqlalchemy": "sqlalchemy" in sys.modules}))
    return value + 1

def sleeps():
    (SCRATCH / "sleeps.pid").write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("SLEEP", "2")))

with DAG("forked", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="where", python_callable=where)
    PythonOperator(task_id="where_again", python_callable=where)
    PythonOperator(task_id="sleeps", python_callable=sleeps)
    given = PythonOperator(task_id="gives", python_callable=gives)
    PythonOperator(task_id="takes", python_callable=takes, op_args=[given.output])
    for i in range(6):
        PythonOperator(task_id=f"n{i}", python_callable=time.sleep, op_args=[0.2])
'''

OTHER = '''
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

with DAG("other", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="nothing")
'''


@pytest.fixture
def forked_dag(flow_home: Path, engine: Engine, scratch: Path) -> Path:
    return write_dag_with_run(flow_home / "dags" / "forked.py", SOURCE, engine)


@pytest.fixture
def executor(forked_dag: Path) -> Iterator[LocalExecutor]:
    with local_executor(parallelism=6) as executor:
        yield executor


def _wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _sleeping_try(executor: LocalExecutor, engine: Engine, forked_dag: Path,
                  scratch: Path) -> tuple[int, int, int]:
    """Start the task that sleeps; the worker's pid, its fork server's and the try's."""
    [worker] = executor.worker_pids()
    server = fork_server_of(worker)
    executor.submit(queue(engine, forked_dag, DAG_ID, "sleeps"))
    pid_file = scratch / "sleeps.pid"  # written by the task: it may exist empty a moment
    _wait(lambda: pid_file.exists() and pid_file.read_text(), "the task did not start sleeping")
    return worker, server, int(pid_file.read_text())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_try_is_forked_from_the_fork_server_which_holds_no_database_engine(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, scratch: Path) -> None:
    [worker] = executor.worker_pids()
    server = fork_server_of(worker)
    for task_id in ("where", "where_again"):  # the first try, and one forked ahead
        executor.submit(queue(engine, forked_dag, DAG_ID, task_id))
        assert finals(collect(executor, 1))[task_id].state == "success"
        seen = json.loads((scratch / "where.json").read_text())
        assert seen == {"ppid": server, "sqlalchemy": False}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_try_reads_xcoms_variables_and_connections_without_loading_sqlalchemy(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, scratch: Path) -> None:
    from flow.secrets.connection import Connection
    from flow.secrets.database import save_connection, save_variable
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        save_connection(Connection("warehouse", "postgres", host="db.example"), session=session)
        save_variable("greeting", "hello", session=session)
    [worker] = executor.worker_pids()
    server = fork_server_of(worker)
    for task_id in ("gives", "takes"):
        executor.submit(queue(engine, forked_dag, DAG_ID, task_id))
        assert finals(collect(executor, 1))[task_id].state == "success"
    seen = json.loads((scratch / "takes.json").read_text())
    assert seen == {"ppid": server, "value": 41, "variable": "hello", "host": "db.example",
                    "sqlalchemy": False}
    with engine.connect() as connection:
        stored = dict(connection.execute(text(
            "SELECT key, value FROM xcom WHERE task_id = 'takes'")).all())
    assert stored == {"seen": "41", "return_value": "42"}


def test_a_killed_worker_takes_its_fork_server_along_and_its_try_still_ends(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, scratch: Path) -> None:
    worker, server, _ = _sleeping_try(executor, engine, forked_dag, scratch)
    os.kill(worker, signal.SIGKILL)
    _wait(lambda: not process_alive(server), "the fork server outlived its worker", 5)
    # The try learns its supervisor is gone, and records its own end.
    _wait(lambda: ti_row(engine, DAG_ID, "sleeps").state == "success",
          "the orphaned try did not record its end")
    events = collect(executor, 1)
    assert finals(events)["sleeps"].state == "lost"
    _wait(lambda: len(executor.worker_pids()) == 1 and executor.worker_pids() != [worker],
          "the worker was not replaced")
    executor.submit(queue(engine, forked_dag, DAG_ID, "where"))
    assert finals(collect(executor, 1))["where"].state == "success"


def test_a_dead_fork_server_ends_its_worker_which_is_replaced_and_its_try_still_ends(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, scratch: Path) -> None:
    worker, server, try_pid = _sleeping_try(executor, engine, forked_dag, scratch)
    os.kill(server, signal.SIGKILL)
    events = collect(executor, 1)  # the worker exits: its try in flight is reported lost
    assert finals(events)["sleeps"].state == "lost"
    assert not process_alive(worker)
    _wait(lambda: ti_row(engine, DAG_ID, "sleeps").state == "success",
          "the try whose fork server died did not record its end")
    _wait(lambda: not process_alive(try_pid), "the try's process did not exit")
    [replacement] = executor.worker_pids()
    assert replacement != worker
    executor.submit(queue(engine, forked_dag, DAG_ID, "where"))
    assert finals(collect(executor, 1))["where"].state == "success"
    assert json.loads((scratch / "where.json").read_text())["ppid"] == \
        fork_server_of(replacement)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_burst_right_after_another_file_is_imported_runs_on_children_of_the_new_version(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, flow_home: Path) -> None:
    """The fork server imports a prepared file while the worker launches a burst: the children
    it forks after the import are of a newer DAGs version than the worker has read of; the
    worker reads that import's answer and uses them (it neither waits forever nor asks for
    children without end)."""
    [worker] = executor.worker_pids()
    server = fork_server_of(worker)
    executor.submit(queue(engine, forked_dag, DAG_ID, "where"))  # imported; spares forked
    assert finals(collect(executor, 1))["where"].state == "success"
    other = flow_home / "dags" / "other.py"
    other.write_text(OTHER)
    executor.prepare(str(other), None)
    for i in range(6):  # more than the spares
        executor.submit(queue(engine, forked_dag, DAG_ID, f"n{i}"))
    outcome = finals(collect(executor, 6))
    assert {outcome[f"n{i}"].state for i in range(6)} == {"success"}
    time.sleep(0.3)
    assert len(children(server)) <= 4 + 6


ENDS_ITS_IMPORTER = '''
import os, sys
from datetime import datetime
from pathlib import Path
from flow import DAG
from flow.operators import EmptyOperator

# As a crash in an extension module would: the fork server that imports it dies.
if sys.argv[0].endswith("local_worker.py") and (
        Path(os.environ["FLOW_TEST_SCRATCH"]) / "exit").exists():
    os._exit(3)

with DAG("ends_its_importer", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
'''


def test_a_dag_file_that_ends_the_fork_server_is_not_imported_again_until_it_changes(
        executor: LocalExecutor, engine: Engine, forked_dag: Path, flow_home: Path,
        scratch: Path) -> None:
    bad = write_dag_with_run(flow_home / "dags" / "ends.py", ENDS_ITS_IMPORTER, engine)
    (scratch / "exit").touch()
    [first] = executor.worker_pids()
    executor.submit(queue(engine, bad, "ends_its_importer", "a"))
    assert finals(collect(executor, 1))["a"].state == "lost"  # its worker's fork server died
    _wait(lambda: executor.worker_pids() not in ([first], []), "the worker was not replaced")
    [second] = executor.worker_pids()
    # Handed out again, as the scheduler does with a lost try: the new worker fails it with
    # the reason, and never imports the file.
    executor.submit(queue(engine, bad, "ends_its_importer", "a"))
    failed = finals(collect(executor, 1))["a"]
    assert failed.state == "failed"
    assert str(bad) in failed.info["message"] and "exited with code 3" in failed.info["message"]
    executor.submit(queue(engine, forked_dag, DAG_ID, "where"))  # the other DAGs run on
    assert finals(collect(executor, 1))["where"].state == "success"
    # Mended: the file changed, so it is imported again, and its task runs.
    (scratch / "exit").unlink()
    os.utime(bad, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    executor.submit(queue(engine, bad, "ends_its_importer", "a", try_number=2))
    assert finals(collect(executor, 1))["a"].state == "success"
    assert executor.worker_pids() == [second]


STUCK_AT_IMPORT = '''
import os, signal, sys
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

# As a call stuck in C code would: the import timeout's alarm cannot interrupt it.
if sys.argv[0].endswith("local_worker.py"):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass

with DAG("stuck_at_import", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
'''


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_fork_server_stuck_importing_a_file_is_killed_and_the_file_is_not_imported_again(
        engine: Engine, forked_dag: Path, flow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT", "1")
    stuck = write_dag_with_run(flow_home / "dags" / "stuck.py", STUCK_AT_IMPORT, engine)
    with local_executor(parallelism=4) as executor:
        [first] = executor.worker_pids()
        executor.submit(queue(engine, stuck, "stuck_at_import", "a"))
        assert finals(collect(executor, 1))["a"].state == "lost"
        _wait(lambda: executor.worker_pids() not in ([first], []), "the worker was not replaced")
        executor.submit(queue(engine, stuck, "stuck_at_import", "a"))
        failed = finals(collect(executor, 1))["a"]
        assert failed.state == "failed"
        assert f"{stuck} did not finish importing within 1.5 s" in failed.info["message"]
        executor.submit(queue(engine, forked_dag, DAG_ID, "where"))
        assert finals(collect(executor, 1))["where"].state == "success"


DROPS_A_CHILD = '''
import os, sys
from datetime import datetime
from pathlib import Path
from flow import DAG
from flow.operators import EmptyOperator

MARK = Path(os.environ["FLOW_TEST_SCRATCH"]) / "dropped"

def _first_child_dies():
    # The first process forked after this import ends before it can hand itself over.
    try:
        os.close(os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(3)

if sys.argv[0].endswith("local_worker.py"):  # in the fork server only
    os.register_at_fork(after_in_child=_first_child_dies)

with DAG("drops_a_child", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
'''


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_child_that_dies_before_it_hands_itself_over_is_replaced(
        engine: Engine, forked_dag: Path, flow_home: Path, scratch: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__LOCAL_EXECUTOR__SPARE_CHILDREN", "0")  # one fork per launch
    drops = write_dag_with_run(flow_home / "dags" / "drops.py", DROPS_A_CHILD, engine)
    with local_executor(parallelism=2) as executor:
        [worker] = executor.worker_pids()
        executor.submit(queue(engine, drops, "drops_a_child", "a"))
        assert finals(collect(executor, 1))["a"].state == "success"
        assert (scratch / "dropped").exists()  # a child did die on the way
        assert executor.worker_pids() == [worker]
