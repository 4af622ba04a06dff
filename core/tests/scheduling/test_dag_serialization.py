"""The JSON form of a DAG, and reading it back without importing user code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from flow import DAG, BaseOperator, Param, TaskGroup, task
from flow.operators import BashOperator, EmptyOperator
from flow.scheduling.serialization import (
    SerializationFailed,
    SerializedDag,
    dag_hash,
    serialize_dag,
)


class InFileOperator(BaseOperator):
    """An operator defined next to the DAG: the reader must not need to import it."""

    template_fields = ("message",)

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: dict[str, Any]) -> None:
        pass


def _dag() -> DAG:
    with DAG("serialized", schedule="0 6 * * *", start_date=datetime(2024, 1, 1),
             tags=["b", "a"], params={"rows": Param(3, type="integer")},
             default_args={"owner": "ops"}, doc_md="# docs") as dag:
        with TaskGroup("extract"):
            first = BashOperator(task_id="pull", bash_command="echo hi", retries=2,
                                 retry_delay=timedelta(seconds=30),
                                 execution_timeout=timedelta(minutes=5), pool="io")
        custom = InFileOperator(task_id="custom", message="{{ ds }}",
                                trigger_rule="all_done")

        @task
        def each(value: int) -> int:
            return value

        first >> custom >> each.expand(value=[1, 2, 3])
        EmptyOperator(task_id="lonely")
    return dag


def test_serialized_dag_is_json_with_every_scheduling_attribute() -> None:
    data = json.loads(json.dumps(serialize_dag(_dag())))
    tasks = {t["task_id"]: t for t in data["tasks"]}
    pull = tasks["extract.pull"]
    assert (pull["retries"], pull["retry_delay"], pull["execution_timeout"], pull["pool"]) == (
        2, 30.0, 300.0, "io")
    assert pull["owner"] == "ops" and pull["task_group_id"] == "extract"
    assert pull["downstream_task_ids"] == ["custom"]
    assert tasks["custom"]["trigger_rule"] == "all_done"
    assert tasks["custom"]["template_fields"] == ["message"]
    assert tasks["custom"]["task_module"].endswith(":InFileOperator")
    assert tasks["each"]["is_mapped"] and tasks["each"]["expand_input"] == {
        "value": {"length": 3}}
    assert data["tags"] == ["a", "b"] and data["doc_md"] == "# docs"
    assert data["timetable"]["type_name"] == "cron"
    assert data["params"]["rows"]["default"] == 3


def test_reading_back_restores_the_timetable_and_the_graph() -> None:
    original = _dag()
    restored = SerializedDag.from_dict(json.loads(json.dumps(serialize_dag(original))))
    assert restored.dag_id == "serialized"
    assert type(restored.timetable).__name__ == type(original.timetable).__name__
    assert restored.get_task("custom").upstream_task_ids == {"extract.pull"}
    assert restored.get_task("extract.pull").retry_delay == timedelta(seconds=30)
    assert [t.task_id for t in restored.topological_sort()][-1] in {"each", "lonely"}
    with pytest.raises(KeyError, match="no task 'missing'"):
        restored.get_task("missing")


def test_the_hash_changes_when_the_dag_changes_and_only_then() -> None:
    first, second = serialize_dag(_dag()), serialize_dag(_dag())
    assert dag_hash(first) == dag_hash(second)
    second["tasks"][0]["retries"] = 7
    assert dag_hash(first) != dag_hash(second)


def test_an_unknown_timetable_is_refused_naming_it() -> None:
    data = serialize_dag(_dag())
    data["timetable"]["type_name"] = "lunar"
    with pytest.raises(SerializationFailed, match="no timetable named 'lunar'"):
        SerializedDag.from_dict(data)


def test_a_newer_serialization_version_is_refused() -> None:
    data = serialize_dag(_dag())
    data["__version"] = 99
    with pytest.raises(SerializationFailed, match="re-parse"):
        SerializedDag.from_dict(data)
