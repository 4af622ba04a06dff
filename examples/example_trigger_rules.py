"""Trigger rules: what a task does when its upstream tasks failed or were skipped.

`flaky` fails (after one quick retry), so `on_success_path` (all_success) ends upstream_failed
while `alert` (one_failed) and `cleanup` (all_done) run. The only leaf, `report` (all_done),
runs once everything upstream is done, so the DAG run succeeds although a task failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flow import DAG, task
from flow.operators import EmptyOperator

with DAG("example_trigger_rules", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"}) as dag:

    @task(retries=1, retry_delay=timedelta(seconds=0.2))
    def flaky() -> None:
        raise RuntimeError("the upstream system is down (on purpose)")

    @task
    def steady() -> str:
        return "ok"

    on_success_path = EmptyOperator(task_id="on_success_path")
    alert = EmptyOperator(task_id="alert", trigger_rule="one_failed")
    cleanup = EmptyOperator(task_id="cleanup", trigger_rule="all_done")
    report = EmptyOperator(task_id="report", trigger_rule="all_done")

    failing, fine = flaky(), steady()
    [failing, fine] >> on_success_path >> report
    [failing, fine] >> alert >> report
    [failing, fine] >> cleanup >> report

if __name__ == "__main__":
    dag.cli()
