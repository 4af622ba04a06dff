"""Acme's operators load rows and check them, in a DAG run through flow's executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DAG_SOURCE = """
from datetime import datetime
from flow import DAG
from flow_acme.operators import AcmeLoadOperator, AcmeRowCountCheckOperator

with DAG("acme_daily", schedule=None, start_date=datetime(2024, 1, 1)):
    load = AcmeLoadOperator(task_id="load", table="orders",
                            rows=[{"id": 1, "dag": "{{ dag.dag_id }}"}, {"id": 2}])
    check = AcmeRowCountCheckOperator(task_id="check", table="orders", min_rows={min_rows})
    load >> check
"""


def test_loaded_rows_land_in_the_warehouse_and_pass_the_check(
        warehouse: Path, dag_files: Any, run_dag: Any) -> None:
    outcome = run_dag(dag_files.dag(DAG_SOURCE.replace("{min_rows}", "2")))

    assert outcome.states == {"load": "success", "check": "success"}
    lines = (warehouse / "public" / "orders.jsonl").read_text().splitlines()
    assert lines == ['{"dag": "acme_daily", "id": 1}', '{"id": 2}']


def test_the_check_fails_without_retrying_when_rows_are_missing(
        warehouse: Path, dag_files: Any, run_dag: Any) -> None:
    outcome = run_dag(dag_files.dag(DAG_SOURCE.replace("{min_rows}", "3")))

    assert outcome.states == {"load": "success", "check": "failed"}
    assert outcome.try_numbers["check"] == 1
