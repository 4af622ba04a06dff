"""Templating: template fields rendered in a sandbox, recursively, with files and macros."""

from __future__ import annotations

from collections import namedtuple

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from flow import DAG
from flow.authoring import macros
from flow.authoring.templating import make_environment, render
from flow.operators import BashOperator, PythonOperator

from .helpers import RecordingTaskInstance

CONTEXT = {"ds": "2024-03-05", "params": {"who": "flow"}, "macros": macros}


def test_template_fields_are_rendered_recursively_on_a_copy():
    with DAG("t"):
        op = PythonOperator(
            task_id="p", python_callable=print,
            op_args=["{{ ds }}", ("{{ params.who }}", 1)],
            op_kwargs={"nested": {"list": ["{{ ds }}!"]}},
            templates_dict={"n": "{{ macros.ds_add(ds, 2) }}"})
    runnable = op.prepare_for_execution()
    runnable.render_template_fields(CONTEXT)
    assert runnable.op_args == ["2024-03-05", ("flow", 1)]
    assert runnable.op_kwargs == {"nested": {"list": ["2024-03-05!"]}}
    assert runnable.templates_dict == {"n": "2024-03-07"}
    assert op.op_args == ["{{ ds }}", ("{{ params.who }}", 1)]  # the definition is untouched


def test_namedtuples_keep_their_type_and_non_strings_pass_through():
    Pair = namedtuple("Pair", "a b")
    env = make_environment()
    assert render(Pair("{{ ds }}", 2), CONTEXT, env) == Pair("2024-03-05", 2)
    marker = object()
    assert render([marker, 3, None], CONTEXT, env) == [marker, 3, None]


def test_a_field_naming_a_template_file_renders_the_file_from_the_dag_folder(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "run.sh").write_text("echo {{ ds }}\n")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "other.sh").write_text("echo {{ params.who }}")
    with DAG("files", fileloc=str(tmp_path / "dag.py"), lineno=1,
             template_searchpath=str(tmp_path / "extra")):
        first = BashOperator(task_id="a", bash_command="scripts/run.sh")
        second = BashOperator(task_id="b", bash_command="other.sh")
    for op, expected in ((first, "echo 2024-03-05\n"), (second, "echo flow")):
        runnable = op.prepare_for_execution()
        runnable.render_template_fields(CONTEXT)
        assert runnable.bash_command == expected


def test_undefined_variables_fail_and_name_the_field():
    with DAG("strict"):
        op = BashOperator(task_id="b", bash_command="echo {{ dss }}")
    with pytest.raises(jinja2.UndefinedError) as info:
        op.prepare_for_execution().render_template_fields(CONTEXT)
    assert "template field 'bash_command' of task 'b'" in "".join(info.value.__notes__)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ params.__class__.__init__.__globals__ }}",
])
def test_the_sandbox_blocks_access_to_python_internals(template):
    with pytest.raises(SecurityError):
        render(template, CONTEXT, make_environment())


def test_user_defined_macros_and_filters():
    with DAG("custom", user_defined_macros={"team": "data"},
             user_defined_filters={"shout": str.upper}) as dag:
        pass
    env = make_environment(dag)
    assert render("{{ team | shout }}", {}, env) == "DATA"


def test_xcom_args_in_template_fields_are_resolved_and_become_dependencies():
    with DAG("xcomfield"):
        up = BashOperator(task_id="up", bash_command="echo 1")
        down = BashOperator(task_id="down", bash_command="true", env={"VALUE": up.output})
    assert down.upstream_task_ids == {"up"}
    runnable = down.prepare_for_execution()
    runnable.render_template_fields({"ti": RecordingTaskInstance({("up", "return_value"): "1"})})
    assert runnable.env == {"VALUE": "1"}


def test_macros():
    assert macros.ds_add("2024-02-28", 2) == "2024-03-01"
    assert macros.ds_add("2024-02-28", -28) == "2024-01-31"
    assert macros.ds_format("2024-02-28", "%Y-%m-%d", "%d/%m/%Y") == "28/02/2024"
    env = make_environment()
    rendered = render("{{ macros.json.dumps({'a': 1}) }} {{ macros.uuid.UUID(int=0) }} "
                      "{{ macros.timedelta(days=1) }} {{ macros.datetime(2024, 1, 1).year }}",
                      CONTEXT, env)
    assert rendered == '{"a": 1} 00000000-0000-0000-0000-000000000000 1 day, 0:00:00 2024'
    assert 0 <= float(render("{{ macros.random.random() }}", CONTEXT, env)) < 1
