"""PythonOperator, BranchPythonOperator, ShortCircuitOperator and EmptyOperator."""

from __future__ import annotations

import pytest
from authoring.helpers import RecordingTaskInstance

from flow import DAG, TaskGroup
from flow.authoring.branching import InvalidBranchError
from flow.exceptions import DagDefinitionError
from flow.operators import (
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)


def _run(op, context):
    runnable = op.prepare_for_execution()
    runnable.render_template_fields(context)
    return runnable.execute(context)


def test_python_operator_calls_with_op_args_and_op_kwargs_and_returns_the_value(caplog):
    def add(a, b, scale=1):
        return (a + b) * scale

    with DAG("py"):
        op = PythonOperator(task_id="add", python_callable=add, op_args=[1, 2],
                            op_kwargs={"scale": 10})
    with caplog.at_level("INFO", logger="flow.task"):
        assert _run(op, {}) == 30
    assert "Returned value was: 30" in caplog.text


def test_a_builtin_without_a_signature_is_called_with_its_op_args():
    with DAG("py"):
        op = PythonOperator(task_id="largest", python_callable=max, op_args=[3, 10, 7])
    assert _run(op, {"ds": "2024-01-01", "ti": object()}) == 10


def test_return_value_can_be_kept_out_of_the_logs(caplog):
    with DAG("py_quiet"):
        op = PythonOperator(task_id="q", python_callable=lambda: "secret-ish",
                            show_return_value_in_logs=False)
    with caplog.at_level("INFO", logger="flow.task"):
        assert _run(op, {}) == "secret-ish"
    assert "secret-ish" not in caplog.text and "not shown" in caplog.text


def test_context_reaches_parameters_by_name_and_templates_dict_is_rendered():
    def show(ds, templates_dict, ti, **context):
        return ds, templates_dict["when"], ti.task_id, sorted(context)

    with DAG("py_ctx"):
        op = PythonOperator(task_id="show", python_callable=show,
                            templates_dict={"when": "{{ ds }}"})
    ti = RecordingTaskInstance(task_id="show")
    assert _run(op, {"ds": "2024-01-01", "ti": ti, "run_id": "r"}) == (
        "2024-01-01", "2024-01-01", "show", ["run_id"])


def test_op_kwargs_win_over_context_keys():
    with DAG("py_override"):
        op = PythonOperator(task_id="t", python_callable=lambda ds: ds,
                            op_kwargs={"ds": "mine"})
    assert _run(op, {"ds": "context"}) == "mine"


class _Unhashable:
    """A callable object that cannot be a dictionary key (it defines ``__eq__`` only)."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __call__(self, ds):
        return f"called for {ds}"


class _Greeter:
    def greet(self, ti, **context):
        return ti, sorted(context)


@pytest.mark.parametrize(("make", "op_args", "expected"), [
    (_Unhashable, None, "called for 2024-01-01"),
    (lambda: _Greeter().greet, None, ("the ti", ["ds", "run_id", "templates_dict"])),
    (lambda: max, [1, 2], 2),
], ids=["unhashable object", "bound method", "builtin"])
def test_every_kind_of_callable_gets_its_context_on_every_call(make, op_args, expected):
    # Parameters are remembered per function (a forked try inherits them from its worker);
    # a callable that cannot be remembered is asked each time, and a second call still works.
    with DAG("py_kinds"):
        op = PythonOperator(task_id="k", python_callable=make(), op_args=op_args)
    for _ in range(2):
        assert _run(op, {"ds": "2024-01-01", "ti": "the ti", "run_id": "r"}) == expected


def test_python_callable_must_be_callable():
    with DAG("py_bad"), pytest.raises(DagDefinitionError, match="must be callable"):
        PythonOperator(task_id="t", python_callable="not callable")


def _branch_dag(choice):
    with DAG("branching") as dag:
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: choice)
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        with TaskGroup("grp") as grp:
            g1 = EmptyOperator(task_id="g1")
            g2 = EmptyOperator(task_id="g2")
            g1 >> g2
        after = EmptyOperator(task_id="after")
        branch >> [a, b, grp]
        a >> after
    return dag, branch


@pytest.mark.parametrize(("choice", "followed"), [
    ("a", ["a"]),
    (["a", "b"], ["a", "b"]),
    ("grp", ["grp.g1"]),
    (None, []),
])
def test_branch_python_operator_follows_the_returned_branches(choice, followed):
    _, branch = _branch_dag(choice)
    ti = RecordingTaskInstance()
    assert _run(branch, {"ti": ti}) == choice
    assert ti.followed == [(followed, False)]


@pytest.mark.parametrize(("choice", "message"), [
    ("after", "'after', which is not directly downstream"),
    ("nope", "'nope', which is not directly downstream"),
    (3, "must return a task_id"),
])
def test_branch_to_a_task_that_is_not_a_direct_downstream_is_a_clear_error(choice, message):
    _, branch = _branch_dag(choice)
    ti = RecordingTaskInstance()
    with pytest.raises(InvalidBranchError, match=message):
        _run(branch, {"ti": ti})
    assert ti.followed == []


@pytest.mark.parametrize(("result", "ignore", "followed"), [
    (True, True, []),
    ([1], True, []),
    (False, True, [([], True)]),
    (0, False, [([], False)]),
])
def test_short_circuit_operator(result, ignore, followed):
    with DAG("sc"):
        op = ShortCircuitOperator(task_id="gate", python_callable=lambda: result,
                                  ignore_downstream_trigger_rules=ignore)
    ti = RecordingTaskInstance()
    assert _run(op, {"ti": ti}) == result
    assert ti.followed == followed


def test_empty_operator_does_nothing():
    with DAG("empty"):
        op = EmptyOperator(task_id="e")
    assert op.execute({}) is None


def test_builtin_plugin_lists_the_operators():
    from flow.builtin.operators import flow_operators

    names = {spec.name: spec.load() for spec in flow_operators()}
    assert names["BashOperator"].__name__ == "BashOperator"
    assert names["ShortCircuitOperator"] is ShortCircuitOperator
    assert names["EmptyOperator"] is EmptyOperator
