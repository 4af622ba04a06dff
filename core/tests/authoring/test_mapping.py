"""Dynamic task mapping: lengths, cross products, XCom inputs and unmapping."""

from __future__ import annotations

import pytest

from flow import DAG, task
from flow.authoring.mappedoperator import MappedOperator
from flow.exceptions import DagDefinitionError
from flow.operators import BashOperator, EmptyOperator

from .helpers import RecordingTaskInstance


def _no_xcom(arg):
    raise AssertionError(f"unexpected XCom lookup {arg}")


def test_classic_operator_maps_over_a_literal_list():
    with DAG("bash_map", default_args={"retries": 2}) as dag:
        mapped = BashOperator.partial(task_id="echo", cwd="/tmp").expand(
            bash_command=["echo a", "echo b", "echo c"])
    assert isinstance(mapped, MappedOperator) and mapped.is_mapped
    assert dag.get_task("echo") is mapped and mapped.task_type == "BashOperator"
    assert mapped.retries == 2
    assert mapped.get_map_lengths(_no_xcom) == 3
    second = mapped.unmap(1, _no_xcom)
    assert isinstance(second, BashOperator) and not second.is_mapped
    assert (second.task_id, second.bash_command, second.cwd, second.retries) == (
        "echo", "echo b", "/tmp", 2)
    assert second.map_index == 1 and second.dag is dag
    assert dag.get_task("echo") is mapped  # unmapping does not register a task


def test_several_expanded_arguments_give_the_cross_product_last_fastest():
    @task
    def add(x, y):
        return x + y

    with DAG("cross"):
        result = add.expand(x=[1, 2], y=[10, 20, 30])
    mapped = result.operator
    assert mapped.get_map_lengths(_no_xcom) == 6
    combos = [mapped.unmap(i, _no_xcom).op_kwargs for i in range(6)]
    assert combos == [{"x": 1, "y": 10}, {"x": 1, "y": 20}, {"x": 1, "y": 30},
                      {"x": 2, "y": 10}, {"x": 2, "y": 20}, {"x": 2, "y": 30}]
    with pytest.raises(IndexError, match="6 mapped instances"):
        mapped.unmap(6, _no_xcom)


def test_mapping_over_a_dict_gives_key_value_pairs():
    @task
    def show(item):
        return item

    with DAG("dictmap"):
        mapped = show.expand(item={"a": 1, "b": 2}).operator
    assert [mapped.unmap(i, _no_xcom).op_kwargs["item"] for i in range(2)] == [
        ("a", 1), ("b", 2)]


def test_mapping_over_an_upstream_output_depends_on_it_and_resolves_at_run_time():
    @task
    def make():
        return [3, 4]

    @task
    def double(value, factor):
        return value * factor

    with DAG("xcommap"):
        made = make()
        doubled = double.partial(factor=2).expand(value=made)
    mapped = doubled.operator
    assert mapped.upstream_task_ids == {"make"}
    ti = RecordingTaskInstance({("make", "return_value"): [3, 4]})

    def resolve(arg):
        return arg.resolve({"ti": ti})

    assert mapped.get_map_lengths(resolve) == 2
    task_1 = mapped.unmap(1, resolve)
    assert task_1.op_kwargs == {"factor": 2, "value": 4}
    assert task_1.execute({"ti": ti}) == 8


def test_upstream_output_that_is_not_a_list_is_a_clear_error():
    @task
    def make():
        return 5

    @task
    def use(v):
        return v

    with DAG("notlist"):
        mapped = use.expand(v=make()).operator
    with pytest.raises(TypeError, match="expands 'v' over 5, which is not a list"):
        mapped.get_map_lengths(lambda arg: 5)


def test_empty_upstream_list_maps_to_zero_instances():
    with DAG("zero"):
        mapped = BashOperator.partial(task_id="t").expand(bash_command=[])
    assert mapped.get_map_lengths(_no_xcom) == 0


def test_mapped_task_inside_a_group_and_downstream_dependencies():
    from flow import TaskGroup

    with DAG("grouped") as dag:
        with TaskGroup("g"):
            mapped = BashOperator.partial(task_id="m").expand(bash_command=["true"])
        end = EmptyOperator(task_id="end")
        mapped >> end
    assert mapped.task_id == "g.m" and dag.get_task("end").upstream_task_ids == {"g.m"}
    assert mapped.unmap(0, _no_xcom).downstream_task_ids == {"end"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: BashOperator.partial(task_id="t").expand(bash_command="echo"), "needs a list"),
    (lambda: BashOperator.partial(task_id="t").expand(nope=[1]), "no argument 'nope'"),
    (lambda: BashOperator.partial(task_id="t", cwd="/").expand(cwd=["/"]), "both partial"),
    (lambda: BashOperator.partial(task_id="t").expand(), "at least one"),
    (lambda: BashOperator.partial(bash_command="x").expand(cwd=["/"]), "needs task_id"),
])
def test_bad_expand_calls_are_definition_errors(call, message):
    with DAG("bad_expand"), pytest.raises(DagDefinitionError, match=message) as info:
        call()
    assert info.value.filename == __file__
