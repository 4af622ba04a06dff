"""DAG structure: context manager, dag=, default_args, ids, timezones, order, @dag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flow import DAG, Param, dag, task
from flow.authoring.params import NOTSET
from flow.exceptions import DagDefinitionError
from flow.operators import BashOperator, DummyOperator, EmptyOperator
from flow.scheduling.timetables import CronTimetable, DeltaTimetable, NullTimetable


def test_the_projects_hello_dag_builds_as_written():
    hello = DAG(dag_id="hello_dag", default_args={
        "owner": "flow", "start_date": datetime.now() - timedelta(days=2)}, schedule=None)
    run_after = DummyOperator(task_id="run_after", dag=hello)
    run_first = BashOperator(task_id="run_first", bash_command='echo "Hello World!"', dag=hello)
    run_first >> run_after
    assert hello.task_ids == ["run_after", "run_first"]
    assert [t.task_id for t in hello.topological_sort()] == ["run_first", "run_after"]
    assert run_after.upstream_task_ids == {"run_first"}
    assert hello.start_date is not None and hello.start_date.tzinfo is not None
    assert isinstance(hello.timetable, NullTimetable)
    assert DummyOperator is EmptyOperator


def test_tasks_created_inside_with_join_the_dag():
    with DAG("ctx") as ctx:
        a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b", dag=ctx)
    assert a.dag is ctx and b.dag is ctx
    assert ctx.get_task("a") is a


def test_default_args_fill_only_what_the_operator_was_not_given():
    with DAG("defaults", default_args={"retries": 3, "retry_delay": 10, "queue": "q",
                                       "owner": "ops", "not_an_argument": 1}):
        plain = BashOperator(task_id="plain", bash_command="true")
        own = BashOperator(task_id="own", bash_command="true", retries=0,
                           default_args={"queue": "special"})
    assert (plain.retries, plain.retry_delay, plain.queue, plain.owner) == (
        3, timedelta(seconds=10), "q", "ops")
    assert (own.retries, own.queue) == (0, "special")


def test_default_args_reach_arguments_of_the_operator_subclass():
    with DAG("sub", default_args={"bash_command": "echo default", "cwd": "/tmp"}):
        op = BashOperator(task_id="t")
    assert op.bash_command == "echo default" and op.cwd == "/tmp"


def test_every_scheduling_attribute_is_kept():
    callback = print
    with DAG("attrs"):
        op = EmptyOperator(
            task_id="t", retries=2, retry_delay=timedelta(minutes=1),
            retry_exponential_backoff=True, max_retry_delay=timedelta(minutes=3),
            execution_timeout=30, trigger_rule="all_done", depends_on_past=True,
            pool="p", pool_slots=2, priority_weight=7, queue="q", executor="celery",
            executor_config={"cpu": 1}, doc_md="# doc", owner="me",
            on_success_callback=callback, on_failure_callback=[callback],
            on_retry_callback=callback)
    assert op.execution_timeout == timedelta(seconds=30)
    assert op.trigger_rule == "all_done" and op.depends_on_past
    assert (op.pool, op.pool_slots, op.priority_weight, op.queue, op.executor) == (
        "p", 2, 7, "q", "celery")
    assert op.executor_config == {"cpu": 1} and op.doc_md == "# doc" and op.owner == "me"
    assert op.iter_callbacks("failure") == [callback] and op.iter_callbacks("retry") == [callback]
    assert op.task_type == "EmptyOperator" and not op.is_mapped


def test_exponential_backoff_doubles_and_is_capped():
    with DAG("retry"):
        op = EmptyOperator(task_id="t", retry_delay=timedelta(seconds=10),
                           retry_exponential_backoff=True, max_retry_delay=timedelta(seconds=50))
        flat = EmptyOperator(task_id="flat", retry_delay=timedelta(seconds=10))
    assert [op.get_retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 100)] == [
        10, 20, 40, 50, 50]
    assert flat.get_retry_delay(5) == timedelta(seconds=10)


@pytest.mark.parametrize("dag_id", ["ok_id", "with-dash", "v1.2", "A9"])
def test_valid_dag_ids(dag_id):
    assert DAG(dag_id).dag_id == dag_id


@pytest.mark.parametrize("dag_id", ["has space", "slash/no", "", "é", "x" * 251])
def test_invalid_dag_id_is_a_definition_error_at_its_line(dag_id):
    with pytest.raises(DagDefinitionError) as info:
        DAG(dag_id)
    assert info.value.filename == __file__ and info.value.lineno > 0
    assert "letters, digits" in str(info.value)


def test_operators_take_keyword_arguments_only():
    with pytest.raises(DagDefinitionError, match="keyword arguments only"):
        EmptyOperator("t")


def test_unknown_operator_argument_is_reported():
    with pytest.raises(DagDefinitionError, match="unknown arguments: retires") as info:
        BashOperator(task_id="t", bash_command="true", retires=3)
    assert info.value.filename == __file__


def test_missing_operator_argument_is_reported_at_the_call():
    with pytest.raises(DagDefinitionError, match="bash_command") as info:
        BashOperator(task_id="t")
    assert info.value.filename == __file__


def test_fileloc_and_lineno_point_at_the_dag_call():
    here = DAG("where")
    import inspect
    assert here.fileloc == __file__
    assert here.lineno == inspect.currentframe().f_lineno - 3


def test_naive_start_date_is_in_the_default_timezone_and_aware_one_sets_the_dag_timezone():
    naive = DAG("naive", start_date=datetime(2024, 1, 1))
    assert naive.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    ams = ZoneInfo("Europe/Amsterdam")
    local = DAG("local", schedule="@daily", start_date=datetime(2024, 1, 1, tzinfo=ams))
    assert local.timezone is ams
    assert isinstance(local.timetable, CronTimetable) and local.timetable.timezone is ams


def test_schedule_interval_is_accepted_as_an_alias():
    assert isinstance(DAG("alias", schedule_interval=timedelta(hours=1)).timetable,
                      DeltaTimetable)
    with pytest.raises(DagDefinitionError, match="not both"):
        DAG("both", schedule="@daily", schedule_interval="@daily")


def test_get_task_names_the_dag_when_missing():
    with DAG("lookup") as lookup:
        EmptyOperator(task_id="a")
    with pytest.raises(KeyError, match="DAG 'lookup' has no task 'b'; its tasks are: a"):
        lookup.get_task("b")
    assert lookup.has_task("a")


def test_topological_sort_keeps_definition_order_between_independent_tasks():
    with DAG("order") as order:
        c = EmptyOperator(task_id="c")
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        z = EmptyOperator(task_id="z")
        z >> a
    assert [t.task_id for t in order.topological_sort()] == ["c", "b", "z", "a"]
    assert {t.task_id for t in order.roots} == {"c", "b", "z"}
    assert {t.task_id for t in order.leaves} == {"c", "a", "b"}
    del a, b, c


def test_owner_comes_from_default_args_or_the_tasks():
    with DAG("owners") as owners:
        EmptyOperator(task_id="a", owner="ann")
        EmptyOperator(task_id="b", owner="bob")
    assert owners.owner == "ann, bob"
    assert DAG("o2", default_args={"owner": "team"}).owner == "team"


def test_dag_decorator_builds_the_dag_with_params_from_the_signature():
    @dag(schedule="@daily", start_date=datetime(2024, 1, 1), tags=["x"])
    def nightly(limit: int = Param(10, type="integer", minimum=1), label="all", needed=None):
        """Nightly *report*."""

        @task
        def show(value):
            return value

        show(limit)

    built = nightly()
    assert built.dag_id == "nightly" and built.tags == ["x"]
    assert built.params["limit"] == 10 and built.params["label"] == "all"
    assert built.params.get_param("limit").schema == {"type": "integer", "minimum": 1}
    assert built.doc_md == "Nightly *report*."
    assert built.fileloc == __file__
    # the param reaches the task as the run's value
    op = built.get_task("show")
    assert op.op_args[0].resolve({"params": {"limit": 3}}) == 3


def test_calling_a_dag_function_with_arguments_changes_the_param_defaults():
    @dag(dag_id="configured")
    def factory(size=Param(5, type="integer"), name="a"):
        pass

    built = factory(size=7, name="b")
    assert built.dag_id == "configured"
    assert built.params["size"] == 7 and built.params["name"] == "b"
    assert built.params.get_param("size").schema == {"type": "integer"}


def test_dag_function_parameter_without_default_is_required_at_trigger_time():
    @dag
    def needs_value(x):
        pass

    built = needs_value()
    assert built.params.get_param("x").default is NOTSET
    assert built.params.resolve({"x": 1}) == {"x": 1}
