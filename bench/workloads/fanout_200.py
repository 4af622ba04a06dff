"""fanout-200: one start task, 200 independent no-op Python tasks, one join task."""

from __future__ import annotations

from datetime import datetime

from flow import DAG
from flow.operators import PythonOperator


def noop() -> None:
    return None


with DAG("bench_fanout_200", schedule=None, start_date=datetime(2024, 1, 1)):
    start = PythonOperator(task_id="start", python_callable=noop)
    join = PythonOperator(task_id="join", python_callable=noop)
    for i in range(200):
        start >> PythonOperator(task_id=f"t{i:03d}", python_callable=noop) >> join
