"""Misbehaving tasks and DAG files under a real ``flow scheduler`` (local executor), next to
well-behaved ones: each bad one ends in the right state or is reported, and the scheduler keeps
running everything else. The executor and processor tests (``tests/executors``,
``tests/scheduling``) pin the mechanisms; these pin what the scheduler makes of them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from flow.scheduling import actions
from flow.store.models import DagRun, ImportError_, SerializedDagModel, TaskInstance
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import duplicate_starts, ledger, run_scheduler_once, start_scheduler, wait_for

NORMAL = 10
BAD_TASKS = f"""
import os, signal, subprocess, time
from datetime import datetime, timedelta
from pathlib import Path
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

HOME = Path(os.environ["FLOW_HOME"])


def exits_hard():
    print("leaving without a word")
    os._exit(9)


def hangs():
    time.sleep(120)


def loud():
    line = "x" * (1 << 20)
    for _ in range(100):
        print(line)


def forks_and_exits():
    children = [subprocess.Popen(["sleep", "120"]) for _ in range(2)]
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    pids = [child.pid for child in children] + [pid]
    (HOME / "forked.pids").write_text(" ".join(map(str, pids)))


with DAG("bad_tasks", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    PythonOperator(task_id="exits_hard", python_callable=exits_hard)
    PythonOperator(task_id="hangs", python_callable=hangs,
                   execution_timeout=timedelta(seconds=1))
    PythonOperator(task_id="loud", python_callable=loud)
    PythonOperator(task_id="forks_and_exits", python_callable=forks_and_exits)
    normal = [PythonOperator(task_id=f"n{{i}}", python_callable=ledgered,
                             op_kwargs={{"seconds": 0.3}}) for i in range({NORMAL})]
    normal >> PythonOperator(task_id="after_normal", python_callable=ledgered)
"""


ZOMBIE_ENV = {"FLOW__CORE__PARALLELISM": "16", "FLOW__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "3",
              "FLOW__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "0.5"}


def _outcome(engine: Engine) -> tuple[dict[str, tuple[str | None, int]], DagRun]:
    with session_scope(engine) as session:
        tis = {ti.task_id: (ti.state, ti.try_number) for ti in
               session.scalars(select(TaskInstance))}
        [run] = session.scalars(select(DagRun)).all()
    return tis, run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie waiting for its parent is gone
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def _log(flow_home: Path, task_id: str, run_id: str, dag_id: str = "bad_tasks") -> Path:
    return (flow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            / "attempt=1.log")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_misbehaving_tasks_end_in_their_state_while_the_others_run(
        write_dag: WriteDag, ledger_engine: Engine, flow_home: Path) -> None:
    write_dag("bad_tasks_dag.py", BAD_TASKS)
    output = run_scheduler_once(120, **ZOMBIE_ENV, FLOW__CORE__TASK_KILL_GRACE_PERIOD="1")
    tis, run = _outcome(ledger_engine)
    expected = {"exits_hard": ("failed", 1), "hangs": ("failed", 1), "loud": ("success", 1),
                "forks_and_exits": ("success", 1), "after_normal": ("success", 1),
                } | {f"n{i}": ("success", 1) for i in range(NORMAL)}
    assert tis == expected, output
    assert run.state == "failed"  # two tasks failed, as they should
    assert sorted(row.task for row in ledger(ledger_engine)) == sorted(
        ["after_normal", *(f"n{i}" for i in range(NORMAL))])
    assert duplicate_starts(flow_home) == []

    assert "exited with code 9" in _log(flow_home, "exits_hard", run.run_id).read_text()
    assert "execution_timeout" in _log(flow_home, "hangs", run.run_id).read_text()
    assert _log(flow_home, "loud", run.run_id).stat().st_size > 100 * (1 << 20)
    forked = [int(pid) for pid in (flow_home / "forked.pids").read_text().split()]
    deadline = time.monotonic() + 5
    while any(map(_alive, forked)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, forked)), "a process the task left behind still runs"
    for pid in forked:  # never leave one behind, even when the assertion above fails
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


KILLS_ITS_WORKER = f"""
import os, signal
from datetime import datetime, timedelta
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered


def kills_its_worker(ti):
    if ti.try_number == 1:
        # Takes its local executor worker down with it: nobody is left to report this try,
        # and the other tries that worker supervises lose their supervisor; they must still
        # finish and record their end.
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(9)


with DAG("kills_its_worker", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    PythonOperator(task_id="kills_its_worker", python_callable=kills_its_worker, retries=1,
                   retry_delay=timedelta(0))
    normal = [PythonOperator(task_id=f"n{{i}}", python_callable=ledgered,
                             op_kwargs={{"seconds": 1.0}}) for i in range({NORMAL})]
    normal >> PythonOperator(task_id="after_normal", python_callable=ledgered)
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_task_that_kills_its_worker_is_retried_and_the_tries_beside_it_succeed(
        write_dag: WriteDag, ledger_engine: Engine, flow_home: Path) -> None:
    write_dag("kills_its_worker_dag.py", KILLS_ITS_WORKER)
    output = run_scheduler_once(120, **ZOMBIE_ENV)
    tis, run = _outcome(ledger_engine)
    assert tis == {"kills_its_worker": ("success", 2), "after_normal": ("success", 1)} | {
        f"n{i}": ("success", 1) for i in range(NORMAL)}, output
    assert run.state == "success"
    log = _log(flow_home, "kills_its_worker", run.run_id, dag_id="kills_its_worker")
    assert "zombie" in log.read_text()
    # Some ordinary tries did share the killed worker, and recorded their own end.
    orphans = [f"n{i}" for i in range(NORMAL) if "the supervisor of this try is gone" in _log(
        flow_home, f"n{i}", run.run_id, dag_id="kills_its_worker").read_text()]
    assert orphans, output
    assert duplicate_starts(flow_home) == []


GOOD = """
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

with DAG("good", schedule="@daily", start_date=datetime(2024, 1, 1),
         end_date=datetime(2024, 1, 2), catchup=True, is_paused_upon_creation=False):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""
BROKEN = "# a flow DAG\nfrom flow import DAG\n\nraise ValueError('broken on purpose')\n"
LOOPS = "# a flow DAG\nimport time\n\nwhile True:\n    time.sleep(0.01)\n"
EDITED = """
import os, time
from datetime import datetime
from pathlib import Path
from flow import DAG
from flow.operators import EmptyOperator, PythonOperator


def slow():
    release = Path(os.environ["FLOW_HOME"]) / "release"
    while not release.exists():
        time.sleep(0.05)


with DAG("edited", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    PythonOperator(task_id="slow", python_callable=slow) >> EmptyOperator(task_id="after")
    {extra}
"""


def _run_states(engine: Engine, dag_id: str) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(select(DagRun.state).where(DagRun.dag_id == dag_id)
                                    .order_by(DagRun.id)))


def _errors(engine: Engine) -> dict[str, ImportError_]:
    with session_scope(engine) as session:
        return {Path(row.filename).name: row for row in session.scalars(select(ImportError_))}


def _ti_state(engine: Engine, dag_id: str, task_id: str) -> str | None:
    with session_scope(engine) as session:
        return session.scalar(select(TaskInstance.state).where(TaskInstance.dag_id == dag_id,
                                                               TaskInstance.task_id == task_id))


def _tasks_of(engine: Engine, dag_id: str) -> list[str]:
    with session_scope(engine) as session:
        row = session.get(SerializedDagModel, dag_id)
        return sorted(task["task_id"] for task in row.data["tasks"]) if row else []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_dag_files_are_reported_while_good_dags_keep_running(
        engine: Engine, write_dag: WriteDag, flow_home: Path) -> None:
    write_dag("good_dag.py", GOOD)
    write_dag("broken_dag.py", BROKEN)
    write_dag("loops_dag.py", LOOPS)
    edited = write_dag("edited_dag.py", EDITED.format(extra=""))
    scheduler = start_scheduler(FLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT="1")
    output = ""
    try:
        wait_for(lambda: _run_states(engine, "good") == ["success", "success"], 60,
                 "the good DAG's two runs")
        errors = _errors(engine)
        assert set(errors) == {"broken_dag.py", "loops_dag.py"}
        assert errors["broken_dag.py"].lineno == 4
        assert "ValueError: broken on purpose" in errors["broken_dag.py"].message
        assert "longer than 1 seconds" in errors["loops_dag.py"].message
        assert "dag_file_processor_timeout" in errors["loops_dag.py"].message

        # Edited while its run runs: the run completes, and the new version is stored.
        wait_for(lambda: _ti_state(engine, "edited", "slow") == "running", 30, "slow running")
        time.sleep(0.05)  # a different mtime, whatever the file system's granularity
        edited.write_text(EDITED.format(extra='EmptyOperator(task_id="added")'))
        wait_for(lambda: "added" in _tasks_of(engine, "edited"), 30, "the edit parsed")
        (flow_home / "release").touch()
        wait_for(lambda: _run_states(engine, "edited") == ["success"], 30, "the edited run")

        # Edited into a broken file: reported with its line; the good DAG still runs.
        edited.write_text(EDITED.format(extra="EmptyOperator(task_id=)"))
        wait_for(lambda: "edited_dag.py" in _errors(engine), 30, "the edit's import error")
        assert _errors(engine)["edited_dag.py"].lineno == EDITED.splitlines().index(
            "    {extra}") + 1
        actions.trigger_dag_run("good", run_id="after_the_edits", actor="test", source="cli")
        wait_for(lambda: _run_states(engine, "good") == ["success"] * 3, 30,
                 "a new run of the good DAG")
        assert scheduler.poll() is None, "the scheduler stopped"
    finally:
        if scheduler.poll() is None:
            scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0 and "Traceback" not in output, output


ENDS_ITS_IMPORTER = """
import os, sys
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

# Parsed cleanly by the DAG processor, but ends the local executor's fork server that imports
# it for the tries (as a crash in an extension module would).
if sys.argv[0].endswith("local_worker.py"):
    os._exit(3)

with DAG("ends_its_importer", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    EmptyOperator(task_id="never_runs")
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dag_file_that_ends_the_process_importing_it_fails_its_tasks_and_only_once(
        engine: Engine, write_dag: WriteDag, flow_home: Path) -> None:
    write_dag("good_dag.py", GOOD)
    write_dag("ends_its_importer_dag.py", ENDS_ITS_IMPORTER)
    output = run_scheduler_once(120, FLOW__LOCAL_EXECUTOR__WORKERS="1")
    assert _run_states(engine, "good") == ["success", "success"], output
    assert _run_states(engine, "ends_its_importer") == ["failed"], output
    assert _ti_state(engine, "ends_its_importer", "never_runs") == "failed"
    with session_scope(engine) as session:
        run_id = session.scalar(select(DagRun.run_id).where(
            DagRun.dag_id == "ends_its_importer"))
    log = _log(flow_home, "never_runs", run_id, dag_id="ends_its_importer").read_text()
    assert "ends_its_importer_dag.py" in log and "exited with code 3" in log, log
    # The worker whose fork server the file ended is replaced once; its replacement is told
    # not to import the file again until it changes.
    assert output.count("its fork server died") == 1, output
