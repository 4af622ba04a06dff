"""TaskFlow: plain Python functions as tasks; return values travel as XComs.

extract -> transform (multiple outputs) -> load; `flow dags test example_taskflow`.
"""

from __future__ import annotations

from datetime import datetime

from flow import dag, task


@dag(dag_id="example_taskflow", schedule=None, start_date=datetime(2024, 1, 1),
     tags=["example"], default_args={"owner": "flow"})
def example_taskflow():
    @task
    def extract() -> dict[str, float]:
        return {"1001": 301.27, "1002": 433.21, "1003": 502.22}

    @task(multiple_outputs=True)
    def transform(orders: dict[str, float]) -> dict[str, float]:
        total = sum(orders.values())
        return {"total": round(total, 2), "count": len(orders)}

    @task
    def load(total: float, count: int) -> str:
        message = f"{count} orders worth {total:.2f}"
        print(message)
        return message

    summary = transform(extract())
    load(summary["total"], summary["count"])


the_dag = example_taskflow()

if __name__ == "__main__":
    the_dag.cli()
