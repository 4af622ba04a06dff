"""Params: typed, validated run parameters with defaults; a bad conf is refused before the run.

`flow dags test example_params --conf '{"rows": 5}'` overrides `rows`; `{"rows": -1}` is refused
by the schema (minimum 1).
"""

from __future__ import annotations

from datetime import datetime

from flow import Param, dag, task


@dag(dag_id="example_params", schedule=None, start_date=datetime(2024, 1, 1),
     tags=["example"], default_args={"owner": "flow"},
     params={"rows": Param(3, type="integer", minimum=1, description="rows to make"),
             "label": Param("row", type="string")})
def example_params():
    @task
    def make_rows(params=None) -> list[str]:
        return [f"{params['label']}-{index}" for index in range(params["rows"])]

    make_rows()


the_dag = example_params()

if __name__ == "__main__":
    the_dag.cli()
