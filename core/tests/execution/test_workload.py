"""The JSON documents between scheduler, executors and task runners."""

from __future__ import annotations

import pytest

from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload, WorkloadError


def test_workload_survives_a_json_round_trip() -> None:
    workload = TaskWorkload(dag_id="d", run_id="r", task_id="t", try_number=2,
                            dag_file="/dags/d.py", map_index=3, dag_hash="abc")
    assert TaskWorkload.from_json(workload.to_json()) == workload
    assert workload.key == TaskKey("d", "r", "t", 3)


def test_workload_missing_a_field_is_refused_naming_it() -> None:
    with pytest.raises(WorkloadError, match="needs field 'try_number'"):
        TaskWorkload.from_json('{"dag_id": "d", "run_id": "r", "task_id": "t", '
                               '"dag_file": "f.py"}')


def test_workload_field_of_the_wrong_type_is_refused_naming_it() -> None:
    with pytest.raises(WorkloadError, match="'map_index' must be an integer"):
        TaskWorkload.from_json('{"dag_id": "d", "run_id": "r", "task_id": "t", '
                               '"dag_file": "f.py", "try_number": 1, "map_index": "0"}')


def test_workload_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(WorkloadError, match="no field"):
        TaskWorkload.from_json('{"dag_id": "d", "run_id": "r", "task_id": "t", '
                               '"dag_file": "f.py", "try_number": 1, "pickle": "x"}')


def test_not_json_is_refused() -> None:
    with pytest.raises(WorkloadError, match="not JSON"):
        TaskWorkload.from_json("dag_id=d")


def test_event_survives_a_json_round_trip() -> None:
    event = TaskEvent(TaskKey("d", "r", "t"), "success", 1, {"exit_code": 0})
    assert TaskEvent.from_json(event.to_json()) == event


def test_task_key_prints_its_map_index() -> None:
    assert str(TaskKey("d", "r", "t", 2)) == "d/r/t[2]"
    assert str(TaskKey("d", "r", "t")) == "d/r/t"
