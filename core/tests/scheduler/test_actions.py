"""flow.scheduling.actions: triggers, pause, clear and marks, validated against the stored DAG,
recorded in the event log, on every metadata database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from flow.plugins import PluginManager, activate
from flow.scheduling import actions
from flow.scheduling.actions import ActionError
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagModel, DagRun, EventLog, TaskInstance
from flow.store.session import session_scope

from .conftest import WriteDag

DAG_WITH_PARAMS = """
from datetime import datetime
from flow import DAG, Param
from flow.operators import EmptyOperator

with DAG("acts", schedule="@daily", start_date=datetime(2024, 1, 1),
         params={"rows": Param(10, type="integer", minimum=1)}):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    c = EmptyOperator(task_id="c")
    a >> b >> c
"""
WHO = {"actor": "alice", "source": "cli"}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def flow_dag_run_state_changed(self, run: Any, previous: Any, current: Any) -> None:
        self.calls.append(("run", previous, current))

    def flow_task_instance_state_changed(self, ti: Any, previous: Any, current: Any) -> None:
        self.calls.append((ti.task_id, previous, current))


@pytest.fixture
def recorder() -> Any:
    manager = PluginManager().load()
    listener = Recorder()
    manager.register(listener, name="recorder")
    with activate(manager):
        yield listener


@pytest.fixture
def stored(write_dag: WriteDag, parse: Callable[[], None]) -> None:
    write_dag("acts_dag.py", DAG_WITH_PARAMS)
    parse()


def _tis(engine: Engine, run_id: str) -> dict[str, TaskInstance]:
    with session_scope(engine) as session:
        rows = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id)).all()
        return {row.task_id: row for row in rows}


def test_trigger_creates_a_queued_run_with_its_task_instances_and_records_it(
        stored: None, engine: Engine, recorder: Recorder) -> None:
    when = datetime(2024, 3, 1, tzinfo=UTC)
    run = actions.trigger_dag_run("acts", logical_date=when, conf={"rows": 5}, **WHO)
    assert run.run_id == "manual__2024-03-01T00:00:00+00:00"
    assert run.state == "queued" and run.conf == {"rows": 5}
    assert run.data_interval_end == when
    assert set(_tis(engine, run.run_id)) == {"a", "b", "c"}
    assert ("run", None, "queued") in recorder.calls
    with session_scope(engine) as session:
        [event] = session.scalars(select(EventLog)).all()
    assert (event.actor, event.action, event.source, event.run_id) == (
        "alice", "dag_run.trigger", "cli", run.run_id)


def test_trigger_refuses_conf_that_breaks_a_param_naming_it(stored: None,
                                                            engine: Engine) -> None:
    with pytest.raises(ActionError, match="rows") as caught:
        actions.trigger_dag_run("acts", conf={"rows": 0}, **WHO)
    assert caught.value.status == 400
    with session_scope(engine) as session:
        assert session.scalars(select(DagRun)).all() == []


def test_duplicate_run_id_is_refused_and_nothing_is_created(stored: None,
                                                            engine: Engine) -> None:
    actions.trigger_dag_run("acts", run_id="mine", **WHO)
    with pytest.raises(ActionError, match="already has a run with run id 'mine'") as caught:
        actions.trigger_dag_run("acts", run_id="mine", **WHO)
    assert caught.value.status == 409
    with session_scope(engine) as session:
        assert len(session.scalars(select(DagRun)).all()) == 1
        assert len(session.scalars(select(EventLog)).all()) == 1


def test_unknown_dag_is_a_404_naming_it(stored: None) -> None:
    with pytest.raises(ActionError, match="no DAG 'nope'") as caught:
        actions.trigger_dag_run("nope", **WHO)
    assert caught.value.status == 404


def test_pause_and_unpause_are_stored_and_recorded(stored: None, engine: Engine) -> None:
    actions.set_paused("acts", False, **WHO)
    with session_scope(engine) as session:
        assert session.get(DagModel, "acts").is_paused is False  # type: ignore[union-attr]
    actions.set_paused("acts", True, actor="bob", source="ui")
    with session_scope(engine) as session:
        assert session.get(DagModel, "acts").is_paused is True  # type: ignore[union-attr]
        actions_logged = [e.action for e in session.scalars(select(EventLog).order_by(EventLog.id))]
    assert actions_logged == ["dag.unpause", "dag.pause"]


def _finish(engine: Engine, run_id: str, states: dict[str, str], run_state: str) -> None:
    with session_scope(engine) as session:
        for task_id, state in states.items():
            session.execute(update(TaskInstance).where(
                TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
                .values(state=state, try_number=1))
        session.execute(update(DagRun).where(DagRun.run_id == run_id).values(state=run_state))


def test_clear_with_downstream_resets_states_keeps_tries_and_requeues_the_run(
        stored: None, engine: Engine, recorder: Recorder) -> None:
    run = actions.trigger_dag_run("acts", run_id="r1", **WHO)
    _finish(engine, run.run_id, {"a": "success", "b": "failed", "c": "upstream_failed"}, "failed")
    would = actions.clear_task_instances("acts", "r1", ["b"], downstream=True, dry_run=True, **WHO)
    assert sorted(t.task_id for t in would) == ["b", "c"]
    assert _tis(engine, "r1")["b"].state == "failed"  # a dry run changes nothing
    cleared = actions.clear_task_instances("acts", "r1", ["b"], downstream=True, **WHO)
    assert sorted(t.task_id for t in cleared) == ["b", "c"]
    tis = _tis(engine, "r1")
    assert (tis["a"].state, tis["b"].state, tis["c"].state) == ("success", None, None)
    assert tis["b"].try_number == 1
    with session_scope(engine) as session:
        assert session.scalars(select(DagRun.state)).one() == "queued"
    assert ("b", "failed", "none") in recorder.calls and ("run", "failed", "queued") in \
        recorder.calls


def test_clear_only_failed_and_upstream(stored: None, engine: Engine) -> None:
    actions.trigger_dag_run("acts", run_id="r1", **WHO)
    _finish(engine, "r1", {"a": "success", "b": "failed", "c": "upstream_failed"}, "failed")
    cleared = actions.clear_task_instances("acts", "r1", ["c"], upstream=True, only_failed=True,
                                           **WHO)
    assert sorted(t.task_id for t in cleared) == ["b", "c"]
    assert _tis(engine, "r1")["a"].state == "success"


def test_clear_of_an_unknown_task_names_it(stored: None) -> None:
    actions.trigger_dag_run("acts", run_id="r1", **WHO)
    with pytest.raises(ActionError, match=r"no task.*zzz"):
        actions.clear_task_instances("acts", "r1", ["zzz"], **WHO)


def test_mark_task_success_and_run_failed(stored: None, engine: Engine) -> None:
    actions.trigger_dag_run("acts", run_id="r1", **WHO)
    ti = actions.set_task_instance_state("acts", "r1", "a", "success", **WHO)
    assert ti.state == TIS.SUCCESS
    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(TaskInstance.task_id == "b")
                        .values(state="running"))
    run = actions.set_dag_run_state("acts", "r1", "failed", **WHO)
    assert run.state == "failed" and run.end_date is not None
    tis = _tis(engine, "r1")
    assert (tis["a"].state, tis["b"].state, tis["c"].state) == ("success", "failed", "skipped")
    with pytest.raises(ActionError, match="success or failed"):
        actions.set_task_instance_state("acts", "r1", "a", "running", **WHO)


def test_delete_run_removes_it_and_its_task_instances(stored: None, engine: Engine) -> None:
    actions.trigger_dag_run("acts", run_id="r1", **WHO)
    actions.delete_dag_run("acts", "r1", **WHO)
    with session_scope(engine) as session:
        assert session.scalars(select(DagRun)).all() == []
        assert session.scalars(select(TaskInstance)).all() == []
    with pytest.raises(ActionError, match="no run 'r1'"):
        actions.delete_dag_run("acts", "r1", **WHO)
