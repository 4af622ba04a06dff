"""TaskFlow: @task calls become tasks, XComArgs become dependencies and values at run time."""

from __future__ import annotations

from datetime import datetime

import pytest

from flow import DAG, task
from flow.authoring.branching import InvalidBranchError
from flow.exceptions import DagDefinitionError
from flow.operators import EmptyOperator

from .helpers import RecordingTaskInstance


def _run(operator, context):
    """Render and execute a task as the task runner does, on a copy."""
    runnable = operator.prepare_for_execution()
    runnable.render_template_fields(context)
    return runnable.execute(context)


def test_passing_a_task_result_creates_the_dependency_and_the_value_at_run_time():
    @task
    def extract():
        return [1, 2, 3]

    @task
    def total(values, offset=0):
        return sum(values) + offset

    with DAG("tf"):
        result = total(extract(), offset=1)
    op = result.operator
    assert op.upstream_task_ids == {"extract"}
    ti = RecordingTaskInstance({("extract", "return_value"): [1, 2, 3]})
    assert _run(op, {"ti": ti}) == 7


def test_dict_return_annotation_or_flag_enables_multiple_outputs():
    @task
    def stats() -> dict[str, int]:
        return {"n": 1}

    @task(multiple_outputs=True)
    def flagged():
        return {"n": 1}

    @task
    def plain():
        return {"n": 1}

    @task
    def use(n):
        return n

    with DAG("outputs"):
        s = stats()
        consumer = use(s["n"])
        f, p = flagged(), plain()
    assert s.operator.multiple_outputs and f.operator.multiple_outputs
    assert not p.operator.multiple_outputs
    ti = RecordingTaskInstance({("stats", "n"): 5})
    assert _run(consumer.operator, {"ti": ti}) == 5


def test_calling_a_task_twice_suffixes_its_task_id():
    @task
    def step():
        return 1

    with DAG("twice") as twice:
        step(), step(), step()
    assert twice.task_ids == ["step", "step__1", "step__2"]


def test_override_changes_task_arguments():
    @task(retries=1)
    def work():
        return 1

    with DAG("override") as override:
        work.override(task_id="custom", retries=4, queue="fast")()
        work()
    custom = override.get_task("custom")
    assert (custom.retries, custom.queue) == (4, "fast")
    assert override.get_task("work").retries == 1


def test_context_is_injected_by_parameter_name_and_by_double_star():
    @task
    def named(value, ds=None, ti=None, params=None):
        return value, ds, ti.task_id, params["p"]

    @task
    def everything(**context):
        return sorted(context)

    with DAG("ctx"):
        a = named(1)
        b = everything()
    ti = RecordingTaskInstance(task_id="named")
    context = {"ti": ti, "ds": "2024-01-01", "params": {"p": 9}, "run_id": "r"}
    assert _run(a.operator, context) == (1, "2024-01-01", "named", 9)
    assert _run(b.operator, context) == ["ds", "params", "run_id", "templates_dict", "ti"]


def test_string_arguments_of_tasks_are_templated():
    @task
    def echo(text):
        return text

    with DAG("tmpl"):
        out = echo("day {{ ds }}")
    assert _run(out.operator, {"ds": "2024-02-02"}) == "day 2024-02-02"


def test_wrong_arguments_to_a_task_function_fail_at_the_call_line():
    @task
    def one(x):
        return x

    with DAG("args"), pytest.raises(DagDefinitionError, match="unexpected keyword") as info:
        one(y=1)
    assert info.value.filename == __file__


def test_task_branch_follows_the_returned_ids_and_expands_groups():
    from flow import TaskGroup

    @task.branch
    def choose(which):
        return which

    with DAG("branchy"):
        decision = choose("{{ params.which }}")
        left = EmptyOperator(task_id="left")
        with TaskGroup("right") as right:
            r1 = EmptyOperator(task_id="r1")
            r2 = EmptyOperator(task_id="r2")
            r1 >> r2
        decision >> [left, right]
    ti = RecordingTaskInstance()
    assert _run(decision.operator, {"ti": ti, "params": {"which": "right"}}) == "right"
    assert ti.followed == [(["right.r1"], False)]
    _run(decision.operator, {"ti": ti, "params": {"which": "left"}})
    assert ti.followed[-1] == (["left"], False)


def test_task_branch_rejects_a_task_that_is_not_directly_downstream():
    @task.branch
    def choose():
        return "far"

    with DAG("branch_far"):
        decision = choose()
        near = EmptyOperator(task_id="near")
        decision >> near >> EmptyOperator(task_id="far")
    with pytest.raises(InvalidBranchError, match="'far', which is not directly downstream"):
        _run(decision.operator, {"ti": RecordingTaskInstance()})


def test_task_short_circuit_skips_downstream_on_a_falsy_result():
    @task.short_circuit
    def gate(open_):
        return open_

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def soft_gate():
        return []

    with DAG("gates", start_date=datetime(2024, 1, 1)):
        open_gate, closed_gate, soft = gate(True), gate(False), soft_gate()
    ti = RecordingTaskInstance()
    assert _run(open_gate.operator, {"ti": ti}) is True and ti.followed == []
    assert _run(closed_gate.operator, {"ti": ti}) is False
    assert _run(soft.operator, {"ti": ti}) == []
    assert ti.followed == [([], True), ([], False)]
