"""Defining DAGs stays cheap: heavy libraries load only when a feature needs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ["sqlalchemy", "jinja2", "jsonschema", "alembic", "cryptography", "click"]


def _modules_loaded_by(code: str) -> list[str]:
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_flow_and_defining_a_dag_loads_no_heavy_library():
    assert _modules_loaded_by("""
        from datetime import datetime, timedelta
        from flow import DAG, Param, TaskGroup, task
        from flow.operators import BashOperator, EmptyOperator, PythonOperator

        with DAG("cheap", schedule=timedelta(days=1), start_date=datetime(2024, 1, 1),
                 params={"n": 1}):
            @task
            def one():
                return 1
            with TaskGroup("g"):
                EmptyOperator(task_id="e") >> BashOperator(task_id="b", bash_command="true")
            one()
    """) == []


def test_jsonschema_loads_only_for_params_with_a_schema():
    assert _modules_loaded_by("""
        from flow import Param
        Param(3, type="integer")
    """) == ["jsonschema"]
