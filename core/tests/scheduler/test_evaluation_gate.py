"""The scheduler skips evaluating a run when an ended try cannot change it: a success that its
downstream tasks' trigger rules wait through (one of many upstream tasks of a join)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, update

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

with DAG("fan", schedule=None, start_date=datetime(2024, 1, 1)):
    start = EmptyOperator(task_id="start")
    middle = [EmptyOperator(task_id=name) for name in ("a", "b", "c")]
    join = EmptyOperator(task_id="join")
    either = EmptyOperator(task_id="either", trigger_rule="one_success")
    start >> middle >> join
    middle[0] >> either
    middle[1] >> either
"""


def _end(engine: Engine, run_id: str, task_id: str, state: str = TIS.SUCCESS) -> None:
    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(
            TaskInstance.dag_id == "fan", TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id).values(state=state))


def _started_run(write_dag: WriteDag, parse: Callable[[], None],
                 engine: Engine) -> tuple[RunManager, str]:
    write_dag("fan.py", DAG)
    parse()
    return trigger_and_start("fan", engine)


def test_successes_a_join_waits_through_skip_the_evaluation_until_the_last(
        write_dag: WriteDag, parse: Callable[[], None], engine: Engine) -> None:
    manager, run_id = _started_run(write_dag, parse, engine)
    ended = [("fan", run_id, "start", "success")]
    assert manager.must_evaluate(ended)  # nothing known of the run yet
    manager.evaluate_running_runs()  # start is scheduled; a, b, c wait on it
    assert manager.must_evaluate(ended)  # start's success lets a, b, c go
    _end(engine, run_id, "start")
    _, scheduled, _ = manager.evaluate_running_runs()
    assert scheduled == 3  # a, b, c

    # "either" (one_success) goes at the first success of a or b; c's success changes only
    # join's count, which needs all three.
    assert not manager.must_evaluate([("fan", run_id, "c", "success")])
    assert manager.must_evaluate([("fan", run_id, "a", "success")])
    _end(engine, run_id, "c")
    _end(engine, run_id, "a")
    _, scheduled, _ = manager.evaluate_running_runs()
    assert scheduled == 1  # either

    assert manager.must_evaluate([("fan", run_id, "b", "success")])  # the last one join needs


def test_any_other_end_is_evaluated(write_dag: WriteDag, parse: Callable[[], None],
                                    engine: Engine) -> None:
    manager, run_id = _started_run(write_dag, parse, engine)
    manager.evaluate_running_runs()
    _end(engine, run_id, "start")
    manager.evaluate_running_runs()

    for state in ("failed", "skipped", "up_for_retry", "refused", "lost"):
        assert manager.must_evaluate([("fan", run_id, "c", state)]), state
    assert manager.must_evaluate([("fan", "another run", "c", "success")])
    # One success the join waits through, one that decides "either": evaluated.
    assert manager.must_evaluate([("fan", run_id, "c", "success"),
                                  ("fan", run_id, "b", "success")])


def test_the_run_ends_once_the_join_is_evaluated(write_dag: WriteDag,
                                                 parse: Callable[[], None],
                                                 engine: Engine) -> None:
    manager, run_id = _started_run(write_dag, parse, engine)
    manager.evaluate_running_runs()
    for task_id in ("start", "a", "b", "c", "either"):
        _end(engine, run_id, task_id)
    manager.evaluate_running_runs()  # join is scheduled: nothing is undecided
    _end(engine, run_id, "join")

    assert manager.must_evaluate([("fan", run_id, "join", "success")])
    finished, _, _ = manager.evaluate_running_runs()
    assert [(run.run_id, state) for run, state, *_ in finished] == [(run_id, "success")]
