"""XCom: tasks push and pull values explicitly, besides return values.

`push` stores a value under its own key and returns another; `pull` reads both, and a
BashOperator reads one through a template.
"""

from __future__ import annotations

from datetime import datetime

from flow import DAG
from flow.operators import BashOperator, PythonOperator


def push(ti) -> dict[str, int]:
    ti.xcom_push(key="pushed_value", value=[1, 2, 3])
    return {"answer": 42}


def pull(ti) -> int:
    pushed = ti.xcom_pull(task_ids="push", key="pushed_value")
    returned = ti.xcom_pull(task_ids="push")
    print(f"pushed={pushed} returned={returned}")
    return sum(pushed) + returned["answer"]


with DAG("example_xcom", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"}) as dag:
    pushing = PythonOperator(task_id="push", python_callable=push)
    pulling = PythonOperator(task_id="pull", python_callable=pull)
    echo = BashOperator(task_id="echo_pulled",
                        bash_command="echo total={{ ti.xcom_pull(task_ids='pull') }}")
    pushing >> pulling >> echo

if __name__ == "__main__":
    dag.cli()
