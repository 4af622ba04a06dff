"""Branching: a branch task picks which downstream path runs; the other is skipped.

`choose` follows `weekday_report` unless the run's conf says `{"weekend": true}`; the join
runs with `none_failed_min_one_success`, so the skipped path does not skip it. `has_data` is a
short circuit that returns False, so `publish` is skipped.
"""

from __future__ import annotations

from datetime import datetime

from flow import DAG, Param, task
from flow.operators import EmptyOperator

with DAG("example_branching", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"},
         params={"weekend": Param(False, type="boolean")}) as dag:

    @task.branch
    def choose(params=None) -> str:
        return "weekend_report" if params["weekend"] else "weekday_report"

    weekday_report = EmptyOperator(task_id="weekday_report")
    weekend_report = EmptyOperator(task_id="weekend_report")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")

    @task.short_circuit
    def has_data() -> bool:
        return False

    publish = EmptyOperator(task_id="publish")

    choose() >> [weekday_report, weekend_report] >> join
    join >> has_data() >> publish

if __name__ == "__main__":
    dag.cli()
