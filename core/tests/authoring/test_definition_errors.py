"""Every malformed DAG file fails with a DagDefinitionError naming its file and line."""

from __future__ import annotations

import pytest

from flow.exceptions import (
    DagCycleError,
    DagDefinitionError,
    DuplicateTaskIdError,
    ParamValidationError,
)

from .helpers import import_dag_file, line_of, write_dag_file


def _import_error(path) -> DagDefinitionError:
    with pytest.raises(DagDefinitionError) as info:
        import_dag_file(path)
    return info.value


def test_cycle_error_names_the_tasks_in_it_and_the_line_that_closed_it(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import EmptyOperator
        with DAG("cyclic"):
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            c = EmptyOperator(task_id="c")
            a >> b >> c
            c >> a  # closes the cycle
    """)
    error = _import_error(path)
    assert isinstance(error, DagCycleError)
    assert "a -> b -> c -> a" in str(error)
    assert (error.filename, error.lineno) == (str(path), line_of(path, "closes the cycle"))
    assert str(error).startswith(f"{path}:{error.lineno}: ")


def test_cycle_in_a_dag_built_with_dag_argument_is_found_by_validate(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import EmptyOperator
        dag = DAG("loop")
        a = EmptyOperator(task_id="a", dag=dag)
        b = EmptyOperator(task_id="b", dag=dag)
        a >> b
        b >> a  # back
    """)
    collected = import_dag_file(path)
    with pytest.raises(DagCycleError, match="a -> b -> a") as info:
        collected.dags[0].validate()
    assert (info.value.filename, info.value.lineno) == (str(path), line_of(path, "# back"))


def test_duplicate_task_id_points_at_the_second_definition(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import BashOperator
        with DAG("dup"):
            BashOperator(task_id="same", bash_command="true")
            BashOperator(task_id="same", bash_command="false")  # second
    """)
    error = _import_error(path)
    assert isinstance(error, DuplicateTaskIdError)
    assert (error.filename, error.lineno) == (str(path), line_of(path, "# second"))
    assert "'same' is already used in DAG 'dup'" in str(error)
    assert f"first defined at {path}:{line_of(path, 'true')}" in str(error)


def test_unknown_trigger_rule_names_the_rule_file_and_line(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import EmptyOperator
        with DAG("rules"):
            EmptyOperator(
                task_id="t",
                trigger_rule="all_sucess",
            )
    """)
    error = _import_error(path)
    assert "unknown trigger rule 'all_sucess'" in str(error)
    assert "none_failed_min_one_success" in str(error)
    assert error.filename == str(path) and error.lineno == line_of(path, "EmptyOperator(")


def test_bad_cron_expression_names_the_dag_file_and_line(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        dag = DAG("croned", schedule="61 * * * *")
    """)
    error = _import_error(path)
    assert "'61 * * * *' is not a valid cron expression" in str(error)
    assert "DAG 'croned'" in str(error)
    assert (error.filename, error.lineno) == (str(path), 2)


def test_task_in_no_dag_is_reported_by_the_collector_with_its_line(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import EmptyOperator
        with DAG("fine"):
            EmptyOperator(task_id="inside")
        EmptyOperator(task_id="stray")  # orphan
    """)
    collected = import_dag_file(path)
    assert [d.dag_id for d in collected.dags] == ["fine"]
    assert [t.task_id for t in collected.orphan_tasks] == ["stray"]
    [message] = collected.orphan_errors()
    assert message.startswith(f"{path}:{line_of(path, '# orphan')}: task 'stray' belongs to no DAG")


def test_tasks_of_two_dags_connected_by_shift_fail_at_that_line(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG
        from flow.operators import EmptyOperator
        with DAG("left"):
            a = EmptyOperator(task_id="a")
        with DAG("right"):
            b = EmptyOperator(task_id="b")
        a >> b  # across
    """)
    error = _import_error(path)
    assert (error.filename, error.lineno) == (str(path), line_of(path, "# across"))


def test_param_default_failing_its_schema_names_the_param_line(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG, Param
        dag = DAG(
            "params",
            params={"n": Param("three", type="integer")},
        )
    """)
    error = _import_error(path)
    assert isinstance(error, ParamValidationError)
    assert "'three' does not satisfy the schema" in str(error)
    assert (error.filename, error.lineno) == (str(path), line_of(path, "Param("))


def test_definition_errors_inside_a_dag_decorator_point_into_the_function(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import dag, task
        from flow.operators import EmptyOperator

        @dag
        def decorated():
            EmptyOperator(task_id="x")
            EmptyOperator(task_id="x")  # again

        decorated()
    """)
    error = _import_error(path)
    assert (error.filename, error.lineno) == (str(path), line_of(path, "# again"))


def test_a_valid_file_collects_its_dags_in_order(tmp_path):
    path = write_dag_file(tmp_path, """
        from flow import DAG, dag
        first = DAG("first")

        @dag
        def second():
            pass

        second()
    """)
    collected = import_dag_file(path)
    assert [d.dag_id for d in collected.dags] == ["first", "second"]
    assert collected.dags[0].fileloc == str(path) and collected.dags[0].lineno == 2
    assert collected.dags[1].lineno == 4
    assert collected.orphan_tasks == []
