"""Dependencies: >>, <<, lists, chain, cross_downstream, task groups."""

from __future__ import annotations

import pytest

from flow import DAG, TaskGroup, chain, cross_downstream, task, task_group
from flow.exceptions import DagDefinitionError, DuplicateTaskIdError
from flow.operators import EmptyOperator


def _ids(tasks):
    return {t.task_id for t in tasks}


def test_shift_operators_with_lists_connect_every_pair():
    with DAG("shift"):
        a, b, c, d = (EmptyOperator(task_id=x) for x in "abcd")
        a >> [b, c] >> d
        [a] << EmptyOperator(task_id="e")
    assert b.upstream_task_ids == {"a"} and c.upstream_task_ids == {"a"}
    assert d.upstream_task_ids == {"b", "c"}
    assert a.upstream_task_ids == {"e"}


def test_left_shift_and_set_upstream_downstream():
    with DAG("left"):
        a, b, c = (EmptyOperator(task_id=x) for x in "abc")
        c << b << a
        d = EmptyOperator(task_id="d")
        d.set_upstream(c)
        d.set_downstream([EmptyOperator(task_id="e")])
    assert b.upstream_task_ids == {"a"} and c.upstream_task_ids == {"b"}
    assert d.upstream_task_ids == {"c"} and d.downstream_task_ids == {"e"}


def test_chain_pairs_adjacent_lists_elementwise():
    with DAG("chained"):
        a, b1, b2, c1, c2, d = (EmptyOperator(task_id=x) for x in
                                ("a", "b1", "b2", "c1", "c2", "d"))
        chain(a, [b1, b2], [c1, c2], d)
    assert b1.upstream_task_ids == {"a"} and b2.upstream_task_ids == {"a"}
    assert c1.upstream_task_ids == {"b1"} and c2.upstream_task_ids == {"b2"}
    assert d.upstream_task_ids == {"c1", "c2"}


def test_chain_rejects_lists_of_different_length():
    with DAG("badchain"):
        a, b, c = (EmptyOperator(task_id=x) for x in "abc")
        with pytest.raises(ValueError, match="same length"):
            chain([a, b], [c])


def test_cross_downstream_connects_every_pair():
    with DAG("cross"):
        ups = [EmptyOperator(task_id=f"u{i}") for i in range(2)]
        downs = [EmptyOperator(task_id=f"d{i}") for i in range(3)]
        cross_downstream(ups, downs)
    assert all(d.upstream_task_ids == {"u0", "u1"} for d in downs)


def test_task_without_dag_joins_the_dag_of_the_task_it_is_connected_to():
    with DAG("adopt") as adopt:
        a = EmptyOperator(task_id="a")
    loose = EmptyOperator(task_id="loose")
    a >> loose
    assert loose.dag is adopt and adopt.has_task("loose")


def test_connecting_tasks_of_two_dags_names_both_dags_and_the_line():
    with DAG("one"):
        a = EmptyOperator(task_id="a")
    with DAG("two"):
        b = EmptyOperator(task_id="b")
    with pytest.raises(DagDefinitionError, match="different DAGs \\('one' and 'two'\\)") as info:
        a >> b
    assert info.value.filename == __file__


def test_task_group_prefixes_task_ids_and_connects_roots_and_leaves():
    with DAG("groups") as groups:
        start = EmptyOperator(task_id="start")
        with TaskGroup("etl") as etl:
            extract = EmptyOperator(task_id="extract")
            clean = EmptyOperator(task_id="clean")
            load = EmptyOperator(task_id="load")
            [extract, clean] >> load
        end = EmptyOperator(task_id="end")
        start >> etl >> end
    assert extract.task_id == "etl.extract" and extract.label == "extract"
    assert _ids(etl.roots) == {"etl.extract", "etl.clean"}
    assert _ids(etl.leaves) == {"etl.load"}
    assert extract.upstream_task_ids == {"start"} and clean.upstream_task_ids == {"start"}
    assert end.upstream_task_ids == {"etl.load"}
    assert groups.task_group.get_task_group_dict()["etl"] is etl


def test_nested_groups_and_group_default_args():
    with DAG("nested", default_args={"retries": 1}):
        with TaskGroup("outer", default_args={"retries": 2, "queue": "outer"}):
            with TaskGroup("inner", default_args={"retries": 3}) as inner:
                t = EmptyOperator(task_id="t")
            u = EmptyOperator(task_id="u")
    assert inner.group_id == "outer.inner" and t.task_id == "outer.inner.t"
    assert (t.retries, t.queue) == (3, "outer")
    assert (u.retries, u.task_id) == (2, "outer.u")


def test_group_without_prefix_keeps_task_ids():
    with DAG("noprefix"):
        with TaskGroup("g", prefix_group_id=False):
            t = EmptyOperator(task_id="t")
    assert t.task_id == "t"


def test_duplicate_group_id_is_an_error():
    with DAG("dupgroup"):
        TaskGroup("g")
        with pytest.raises(DuplicateTaskIdError, match="group_id 'g'"):
            TaskGroup("g")


def test_task_group_outside_a_dag_is_an_error():
    with pytest.raises(DagDefinitionError, match="outside any DAG"):
        TaskGroup("lonely")


def test_task_group_decorator_creates_a_group_per_call_and_returns_the_last_output():
    @task
    def step(x):
        return x

    @task_group
    def section(value):
        return step(step(value))

    @task_group(group_id="empty_section")
    def nothing():
        EmptyOperator(task_id="noop")

    with DAG("decorated") as decorated:
        first = section(1)
        second = section(2)
        group = nothing()
        first >> group
    assert first.operator.task_id == "section.step__1"
    assert second.operator.task_id == "section__1.step__1"
    assert isinstance(group, TaskGroup) and group.group_id == "empty_section"
    assert decorated.get_task("empty_section.noop").upstream_task_ids == {"section.step__1"}
    assert decorated.get_task("section.step__1").upstream_task_ids == {"section.step"}


def test_xcom_arg_dependencies():
    with DAG("xcomdeps"):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        a.output >> b
    assert b.upstream_task_ids == {"a"}
    with pytest.raises(TypeError, match="only known when the DAG runs"):
        list(a.output)
