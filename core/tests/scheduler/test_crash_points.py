"""The scheduler killed (SIGKILL, by ``FLOW_CRASH_AT``) at each named crash point between a
commit and its next step, then restarted: the run completes, no task instance is lost and no try
starts twice. On every metadata database, against real ``flow scheduler`` processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from flow.scheduling.crashpoints import CRASH_POINTS
from flow.store.models import DagRun, Job, TaskInstance
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import assert_ran_once_and_completed, ledger, run_scheduler_once, start_scheduler

TASKS = 5
SMALL = """
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

with DAG("points", schedule="@once", start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    middle = [PythonOperator(task_id=f"m{i}", python_callable=ledgered,
                             op_kwargs={"seconds": 0.2}) for i in range(3)]
    PythonOperator(task_id="start", python_callable=ledgered) >> middle >> PythonOperator(
        task_id="join", python_callable=ledgered)
"""
# A dead scheduler's tries are adopted once its heartbeat is this old (or at once, when its
# pid is gone on this host). One worker: a scheduler here lives for seconds, and starting a
# worker costs about as much CPU as the whole run of this DAG.
ENV = {"FLOW__SCHEDULER__HEALTH_THRESHOLD": "2", "FLOW__LOCAL_EXECUTOR__WORKERS": "1"}


class Snapshot:
    """What the database holds when the killed scheduler died."""

    def __init__(self, engine: Engine) -> None:
        with session_scope(engine) as session:
            self.runs = list(session.scalars(select(DagRun.state)))
            self.tis = {ti.task_id: ti.state for ti in session.scalars(select(TaskInstance))}
            self.queued_by = {ti.task_id: ti.queued_by_job_id
                              for ti in session.scalars(select(TaskInstance))}
            self.last_job = session.scalar(select(func.max(Job.id)))
        self.ledger = [row.task for row in ledger(engine)]

    def __repr__(self) -> str:
        return f"runs {self.runs}, task instances {self.tis}, ledger {self.ledger}"

    def untouched(self, *task_ids: str) -> bool:
        return all(self.tis.get(task_id) is None for task_id in task_ids)


MIDDLE = ("m0", "m1", "m2")
# Evidence, in the database, that the scheduler died at the point named and not elsewhere.
DIED_AT: dict[str, Callable[[Snapshot], bool]] = {
    "run_created": lambda s: s.runs == ["queued"],
    "run_started": lambda s: s.runs == ["running"] and s.untouched("start", *MIDDLE, "join"),
    # The evaluation that made start ready queued it in the same commit.
    "run_evaluated": lambda s: (s.tis["start"] == "queued" and s.ledger == []
                                and s.untouched(*MIDDLE, "join")),
    "tries_queued": lambda s: s.tis["start"] == "queued" and s.ledger == [],
    "tries_submitted": lambda s: (s.tis["start"] in ("queued", "running", "success")
                                  and s.untouched(*MIDDLE, "join")),
    # Events may arrive after the database moved on (the scheduler also evaluates every
    # idle_sleep), so how far the run got is open; that it did not finish is not.
    "events_applied": lambda s: "start" in s.ledger and s.runs == ["running"],
    "run_finished": lambda s: s.runs == ["success"] and set(s.ledger) == {"start", "join",
                                                                           *MIDDLE},
    # The second scheduler claimed one of the first one's queued tries, then died.
    "tries_adopted": lambda s: (s.tis["start"] == "success"
                                and [s.queued_by[t] for t in MIDDLE].count(s.last_job) == 1
                                and all(s.tis[t] == "queued" for t in MIDDLE)),
}


def _crash(point: str) -> str:
    """``flow scheduler --once`` with FLOW_CRASH_AT=point: it must die by SIGKILL (if the
    point were never reached, it would exit 0 once the run was done)."""
    process = start_scheduler("--once", FLOW_CRASH_AT=point, **ENV)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"FLOW_CRASH_AT={point}: still running after 60 s\n{output}")
    assert process.returncode == -9, (
        f"FLOW_CRASH_AT={point}: exit code {process.returncode}, not SIGKILL\n{output}")
    return output


def test_the_names_walked_here_are_the_crash_points() -> None:
    assert set(DIED_AT) == set(CRASH_POINTS)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_scheduler_killed_at_a_crash_point_loses_nothing_and_starts_nothing_twice(
        point: str, write_dag: WriteDag, ledger_engine: Engine, flow_home: Path) -> None:
    write_dag("points_dag.py", SMALL)
    outputs = []
    if point == "tries_adopted":
        # First a scheduler killed while the three middle tries are queued, then one that dies
        # right after claiming the first of them.
        outputs.append(_crash("tries_queued:2"))
        snapshot = Snapshot(ledger_engine)
        assert snapshot.tis["start"] == "success" and all(
            snapshot.tis[t] == "queued" for t in MIDDLE), snapshot
    outputs.append(_crash(point))
    snapshot = Snapshot(ledger_engine)
    assert DIED_AT[point](snapshot), f"FLOW_CRASH_AT={point}, but the database holds {snapshot}"
    outputs.append(run_scheduler_once(**ENV))
    assert_ran_once_and_completed(ledger_engine, flow_home, TASKS, "\n".join(outputs))
