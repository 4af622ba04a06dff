"""A supervisor starts the tries that arrive together in one transaction, and commits the ends
that arrive together in another, on each database: every transition guarded, a refused or
lost race reported per try, the others unaffected."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_helpers import RUN_ID, queue, ti_row, tries
from sqlalchemy import Engine, event, select, update

from flow.execution.task_runner import StartRequest, TryEnd, finish_tries, start_tries
from flow.store.models import TaskInstance, XComModel
from flow.store.session import session_scope

DAG_ID = "misbehaving"
SLOTS = [f"slot_{i}" for i in range(6)]


def _request(task_id: str, pid: int, try_number: int | None = 1) -> StartRequest:
    return StartRequest(DAG_ID, RUN_ID, task_id, -1, try_number, pid)


def _set(engine: Engine, task_id: str, **values: object) -> None:
    with session_scope(engine) as session:
        session.execute(update(TaskInstance).where(
            TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == task_id).values(**values))


def test_many_tries_start_together_and_a_refused_or_missing_one_changes_nothing_else(
        engine: Engine, dag_file: Path) -> None:
    for task_id in SLOTS[:4]:
        queue(engine, dag_file, DAG_ID, task_id)
    _set(engine, "slot_2", state="success")  # another process got there first

    results = start_tries(engine, [_request("slot_0", 101), _request("slot_1", 102),
                                   _request("slot_2", 103), _request("nowhere", 104),
                                   _request("slot_3", 105)])

    started = [(r[0].row.task_id if r[0] else None, r[1][:20]) for r in results]
    assert started == [("slot_0", ""), ("slot_1", ""), ("slot_2", "refused to start try"),
                       (None, "no task instance mis"), ("slot_3", "")]
    for task_id, pid in (("slot_0", 101), ("slot_1", 102), ("slot_3", 105)):
        row = ti_row(engine, DAG_ID, task_id)
        assert (row.state, row.try_number, row.pid) == ("running", 1, pid)
        assert [(t.try_number, t.state, t.pid) for t in tries(engine, row.id)] == [
            (1, "running", pid)]
    refused = ti_row(engine, DAG_ID, "slot_2")
    assert refused.state == "success" and tries(engine, refused.id) == []


def test_a_try_started_twice_in_a_batch_is_refused_once_the_others_start(
        engine: Engine, dag_file: Path) -> None:
    for task_id in SLOTS[:3]:
        queue(engine, dag_file, DAG_ID, task_id)
    [(first, refusal)] = start_tries(engine, [_request("slot_1", 201)])
    assert first is not None and refusal == ""
    _set(engine, "slot_1", state="queued")  # as a late, duplicate delivery would find it

    results = start_tries(engine, [_request("slot_0", 202), _request("slot_1", 203),
                                   _request("slot_2", 204)])

    assert [r[1] == "" for r in results] == [True, False, True]
    assert "already started" in results[1][1]
    assert [t.pid for t in tries(engine, ti_row(engine, DAG_ID, "slot_1").id)] == [201]


def test_many_ends_commit_together_and_one_someone_else_ended_first_keeps_theirs(
        engine: Engine, dag_file: Path) -> None:
    for task_id in SLOTS[:4]:
        queue(engine, dag_file, DAG_ID, task_id)
    started = [s for s, _ in start_tries(engine, [_request(t, 300 + i)
                                                  for i, t in enumerate(SLOTS[:4])])]
    assert all(started)
    _set(engine, "slot_1", state="failed")  # a user marked it failed meanwhile
    ends = [TryEnd("success", duration=0.5),
            TryEnd("success", duration=0.5, xcoms={"return_value": "7"}),
            TryEnd("up_for_retry", "boom", 0.2, retry_delay=30.0),
            TryEnd("success", duration=0.1, xcoms={"return_value": "42"})]

    results = finish_tries(engine, [(s.row, 1, end) for s, end in zip(started, ends,
                                                                      strict=True)
                                    if s is not None])

    assert [(r.committed, r.state) for r in results] == [
        (True, "success"), (False, "failed"), (True, "up_for_retry"), (True, "success")]
    states = {t: ti_row(engine, DAG_ID, t) for t in SLOTS[:4]}
    assert {t: row.state for t, row in states.items()} == {
        "slot_0": "success", "slot_1": "failed", "slot_2": "up_for_retry",
        "slot_3": "success"}
    assert states["slot_2"].next_retry_at is not None
    assert [(t.state, t.error) for t in tries(engine, states["slot_2"].id)] == [
        ("up_for_retry", "boom")]
    with session_scope(engine) as session:
        pushed = session.execute(select(XComModel.task_id, XComModel.key)).all()
    assert pushed == [("slot_3", "return_value")]  # the losing end's XComs are dropped


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_starting_and_ending_a_batch_reads_task_instances_by_index_not_by_scan(
        engine: Engine, dag_file: Path) -> None:
    """On SQLite, whose planner scans the whole table for some shapes of query (a row-value
    IN): with a large task_instance table every batch would read all of it."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, parameters))

    for task_id in SLOTS[:3]:
        queue(engine, dag_file, DAG_ID, task_id)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        started = [s for s, _ in start_tries(engine, [_request(t, 400 + i)
                                                      for i, t in enumerate(SLOTS[:3])])]
        _set(engine, "slot_0", state="failed")  # a lost race: the ends are read back
        finish_tries(engine, [(s.row, 1, TryEnd("success")) for s in started if s])
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert statements
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " / ".join(str(row[-1]) for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN task_instance" not in plan, f"{statement}\n-> {plan}"


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "alone"])
def test_a_retry_starts_without_its_earlier_tries_xcoms_and_a_first_try_deletes_none(
        engine: Engine, dag_file: Path, batch: bool) -> None:
    for task_id in SLOTS[:2]:
        queue(engine, dag_file, DAG_ID, task_id)
    [(first, _)] = start_tries(engine, [_request("slot_0", 401)])
    assert first is not None
    finish_tries(engine, [(first.row, 1, TryEnd("up_for_retry", "boom", 0.1, retry_delay=0.0,
                                                 xcoms={"partial": "1"}))])
    queue(engine, dag_file, DAG_ID, "slot_0", try_number=2)
    statements: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        if batch:
            results = start_tries(engine, [_request("slot_0", 402, 2), _request("slot_1", 403)])
        else:
            results = [*start_tries(engine, [_request("slot_1", 403)]),
                       *start_tries(engine, [_request("slot_0", 402, 2)])]
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert all(refusal == "" for _, refusal in results)
    with session_scope(engine) as session:
        assert session.execute(select(XComModel.task_id)).all() == []
    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE FROM XCOM")]
    # One for the retry; none for the first try (alone, its start is its own transaction).
    assert len(deletes) == 1
