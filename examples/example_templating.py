"""Templating: Jinja in template fields, rendered with the run's context in a sandbox.

`{{ ds }}`, `{{ macros.ds_add(ds, 7) }}`, `{{ params.greeting }}` and `{{ run_id }}` in a bash
command; the rendered command is stored with the task instance (secrets masked).
"""

from __future__ import annotations

from datetime import datetime

from flow import DAG, Param
from flow.operators import BashOperator, PythonOperator


def show(greeting: str, next_week: str) -> str:
    print(f"{greeting}; a week later is {next_week}")
    return next_week


with DAG("example_templating", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"},
         params={"greeting": Param("hello", type="string")}) as dag:
    BashOperator(
        task_id="echo_dates",
        bash_command='echo "{{ params.greeting }} on {{ ds }} ({{ ds_nodash }}), '
                     'next week {{ macros.ds_add(ds, 7) }}, run {{ run_id }}"',
    )
    PythonOperator(
        task_id="python_templates",
        python_callable=show,
        op_kwargs={"greeting": "{{ params.greeting | upper }}",
                   "next_week": "{{ macros.ds_add(ds, 7) }}"},
    )

if __name__ == "__main__":
    dag.cli()
