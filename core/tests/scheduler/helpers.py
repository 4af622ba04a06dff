"""Running ``flow scheduler`` as a real process, and the ledger test tasks write to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from flow.plugins import current
from flow.scheduling.actions import set_paused, trigger_dag_run
from flow.scheduling.runs import RunManager
from flow.store.session import session_scope

# A table test tasks insert into, one row per try they start: (task, try) is unique, so a try
# that started twice fails loudly; start/end times let a test check pool limits.
LEDGER_DDL = """
CREATE TABLE ledger (
    run_id VARCHAR(250) NOT NULL,
    task VARCHAR(250) NOT NULL,
    try_number INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION,
    CONSTRAINT uq_ledger UNIQUE (run_id, task, try_number)
)
"""

# Imported by test DAG files: records the try in the ledger, optionally sleeping.
LEDGER_TASK = '''
import os, time
from sqlalchemy import text
from flow.store.session import get_engine


def ledgered(seconds=0.0, **context):
    ti = context["ti"]
    name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    engine = get_engine()
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO ledger (run_id, task, try_number, started) "
                                    "VALUES (:r, :t, :n, :s)"),
                               {"r": ti.run_id, "t": name, "n": ti.try_number,
                                "s": time.time()})
    except Exception:
        # A second start of this try: its failure may be a no-op in the database (the first
        # start already ended the try), so it is also recorded where a test can see it.
        with open(os.path.join(os.environ["FLOW_HOME"], "ledger_duplicates"), "a") as out:
            out.write(f"{ti.run_id} {name} {ti.try_number} pid {os.getpid()}\\n")
        raise
    time.sleep(seconds)
    with engine.begin() as connection:
        connection.execute(text("UPDATE ledger SET ended = :e WHERE run_id = :r AND task = :t "
                                "AND try_number = :n"),
                           {"e": time.time(), "r": ti.run_id, "t": name, "n": ti.try_number})
'''


def create_ledger(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS ledger"))
        connection.execute(text(LEDGER_DDL))


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT run_id, task, try_number, started, ended FROM ledger ORDER BY started")))


def drop_ledger(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS ledger"))


def scheduler_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"FLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "1",
                "FLOW__SCHEDULER__IDLE_SLEEP": "0.2",
                "FLOW__SCHEDULER__HEARTBEAT_INTERVAL": "1",
                "FLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
                "FLOW__LOCAL_EXECUTOR__WORKERS": "2"})
    env.update(extra)
    return env


def start_scheduler(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flow.cli.main", "scheduler", *args],
                            env=scheduler_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_scheduler_once(timeout: float = 60, **env: str) -> str:
    """``flow scheduler --once``: until nothing is left to run; its output."""
    process = start_scheduler("--once", **env)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"flow scheduler --once did not finish in {timeout} s:\n{output}")
    assert process.returncode == 0, output
    return output


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "",
             detail: Callable[[], str] | None = None) -> Any:
    """``condition()``'s first truthy value; on timeout an error naming ``what``, with
    ``detail()`` (a process's output so far) when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}"
                         + (f"; output so far:\n{detail()}" if detail else ""))


def states(engine: Engine, model: Any, *columns: Any) -> list[Any]:
    from sqlalchemy import select

    with session_scope(engine) as session:
        return list(session.execute(select(*columns).select_from(model)).all())


def duplicate_starts(flow_home: Path) -> list[str]:
    """Tries whose ledger insert hit the unique key: each was started a second time."""
    path = flow_home / "ledger_duplicates"
    return path.read_text().splitlines() if path.exists() else []


def kill_9(process: subprocess.Popen[str]) -> str:
    """SIGKILL a scheduler and reap it (a reaped pid is what tells the next one it is dead);
    its output."""
    process.send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=30)
    return output


def assert_ran_once_and_completed(engine: Engine, flow_home: Path, tasks: int,
                                  output: str = "") -> None:
    """After crashes and restarts: every run succeeded; all ``tasks`` task instances exist and
    succeeded (none lost); each try in the ledger belongs to a task instance's current try and
    started once (the ledger's unique key, the recorded duplicates, ``task_instance_try``)."""
    from sqlalchemy import func, select

    from flow.store.models import DagRun, TaskInstance, TaskInstanceTry

    rows = ledger(engine)
    with session_scope(engine) as session:
        runs = session.execute(select(DagRun.run_id, DagRun.state)).all()
        tis = session.execute(select(TaskInstance.run_id, TaskInstance.task_id,
                                     TaskInstance.map_index, TaskInstance.state,
                                     TaskInstance.try_number)).all()
        tries = session.scalar(select(func.count()).select_from(TaskInstanceTry))
    unfinished = sorted((ti.task_id, ti.map_index, ti.state, ti.try_number) for ti in tis
                        if ti.state != "success")
    context = f"runs {runs}; task instances not successful {unfinished}\n{output[-6000:]}"
    assert runs and {state for _, state in runs} == {"success"}, context
    assert len(tis) == tasks and not unfinished, context
    assert duplicate_starts(flow_home) == [], context
    started = sorted((row.run_id, row.task, row.try_number) for row in rows)
    assert len(started) == len(set(started)), context
    current = sorted((ti.run_id, ti.task_id if ti.map_index < 0
                      else f"{ti.task_id}[{ti.map_index}]", ti.try_number) for ti in tis)
    assert started == current, context
    assert tries == tasks, context


def trigger_and_start(dag_id: str, engine: Engine) -> tuple[RunManager, str]:
    """Unpause ``dag_id`` (parsed already), trigger a run and start it with a RunManager
    (no scheduler process): the manager and the run id."""
    set_paused(dag_id, False, actor="test", source="cli")
    run_id = trigger_dag_run(dag_id, actor="test", source="cli").run_id
    manager = RunManager(engine, current())
    manager.start_queued_runs()
    return manager, run_id
