"""A success event that says its try recorded no branch decision spares the scheduler reading
one; a decision recorded by any other try is still read and followed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, select, update

from flow.scheduling.deps import FOLLOWED_XCOM_KEY
from flow.scheduling.runs import RunManager
from flow.states import TaskInstanceState as TIS
from flow.store.models import TaskInstance
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import trigger_and_start

DAG = """
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

with DAG("forks", schedule=None, start_date=datetime(2024, 1, 1)):
    start = EmptyOperator(task_id="start")
    start >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]
"""


@contextmanager
def _xcom_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read the xcom table while the block runs."""
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "xcom" in statement.lower():
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _started(write_dag: WriteDag, parse: Callable[[], None],
             engine: Engine) -> tuple[RunManager, str]:
    write_dag("forks.py", DAG)
    parse()
    manager, run_id = trigger_and_start("forks", engine)
    manager.evaluate_running_runs()  # start is scheduled
    return manager, run_id


def _decide(manager: RunManager, engine: Engine, run_id: str, ti_id: int,
            followed: list[str]) -> None:
    """Record the branch decision of ``start`` (task instance ``ti_id``), as its try would."""
    with session_scope(engine) as session:
        manager.xcom_backend().set(ti_id=ti_id, dag_id="forks", run_id=run_id,
                                   task_id="start", map_index=-1, key=FOLLOWED_XCOM_KEY,
                                   value={"followed": followed, "skip_all_downstream": False},
                                   session=session)


def _succeed(engine: Engine, run_id: str, task_id: str, try_number: int) -> int:
    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(
            TaskInstance.dag_id == "forks", TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id).values(state=TIS.SUCCESS, try_number=try_number))
        return session.scalar(select(TaskInstance.id).where(
            TaskInstance.dag_id == "forks", TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id))


def _states(engine: Engine, run_id: str) -> dict[str, str | None]:
    with session_scope(engine) as session:
        return dict(session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == "forks", TaskInstance.run_id == run_id)).all())


def test_a_noted_success_without_a_decision_is_not_read(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    manager, run_id = _started(write_dag, parse, engine)
    _succeed(engine, run_id, "start", 1)
    manager.note_no_branch_decision("forks", run_id, "start", 1)
    with _xcom_reads(engine) as reads:
        _, scheduled, _ = manager.evaluate_running_runs()
    assert scheduled == 2
    assert reads == []


def test_without_the_note_the_decision_is_read_and_followed(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    manager, run_id = _started(write_dag, parse, engine)
    ti_id = _succeed(engine, run_id, "start", 1)
    _decide(manager, engine, run_id, ti_id, ["left"])
    with _xcom_reads(engine) as reads:
        manager.evaluate_running_runs()
    assert len(reads) == 1
    states = _states(engine, run_id)
    assert (states["left"], states["right"]) == (TIS.SCHEDULED, TIS.SKIPPED)


def test_a_note_for_an_earlier_try_does_not_hide_a_later_decision(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    manager, run_id = _started(write_dag, parse, engine)
    manager.note_no_branch_decision("forks", run_id, "start", 1)  # try 1, then a clear
    ti_id = _succeed(engine, run_id, "start", 2)
    _decide(manager, engine, run_id, ti_id, ["right"])
    manager.evaluate_running_runs()
    states = _states(engine, run_id)
    assert (states["left"], states["right"]) == (TIS.SKIPPED, TIS.SCHEDULED)
