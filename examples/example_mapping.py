"""Dynamic task mapping: one task instance per element, over a literal list or an upstream XCom.

`double` runs three times (map_index 0..2) over the list `numbers` returns; `total` receives
the three results as one list. `shout` maps a BashOperator over a literal list.
"""

from __future__ import annotations

from datetime import datetime

from flow import DAG, task
from flow.operators import BashOperator

with DAG("example_mapping", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"}) as dag:

    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def double(value: int, factor: int) -> int:
        return value * factor

    @task
    def total(values: list[int]) -> int:
        print(f"sum of {values} is {sum(values)}")
        return sum(values)

    total(double.partial(factor=2).expand(value=numbers()))

    BashOperator.partial(task_id="shout").expand(
        bash_command=["echo alpha", "echo beta"])

if __name__ == "__main__":
    dag.cli()
