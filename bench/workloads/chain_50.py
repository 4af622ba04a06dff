"""chain-50: 50 no-op Python tasks in a strict chain."""

from __future__ import annotations

from datetime import datetime

from flow import DAG
from flow.operators import PythonOperator


def noop() -> None:
    return None


with DAG("bench_chain_50", schedule=None, start_date=datetime(2024, 1, 1)):
    previous = None
    for i in range(50):
        task = PythonOperator(task_id=f"t{i:02d}", python_callable=noop)
        if previous is not None:
            previous >> task
        previous = task
