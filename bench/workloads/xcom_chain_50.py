"""xcom-chain-50: 50 Python tasks in a strict chain, each taking the previous one's return value
(an XCom pull per task, as a TaskFlow pipeline does)."""

from __future__ import annotations

from datetime import datetime

from flow import DAG
from flow.operators import PythonOperator


def step(previous: int | None = None) -> int:
    return (previous or 0) + 1


with DAG("bench_xcom_chain_50", schedule=None, start_date=datetime(2024, 1, 1)):
    task = PythonOperator(task_id="t00", python_callable=step)
    for i in range(1, 50):
        task = PythonOperator(task_id=f"t{i:02d}", python_callable=step, op_args=[task.output])
