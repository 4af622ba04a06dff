"""What a try's process runs imports no SQLAlchemy: the supervisor's child side, the task
runner, the runtime, the XCom backend's serialization, the plugins and a DAG file. A process
that only forks tries then need not hold SQLAlchemy (28 MB here, whose page tables every fork
copies and every exit tears down); its statements are built on first use, where the database is
used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from pathlib import Path

import flow.builtin.executors.local_worker as worker
import flow.execution.channel
import flow.execution.supervisor
import flow.execution.task_runner
from flow.config import load_config
from flow.plugins import current, set_current
from flow.scheduling.dagbag import load_dag_file

load_config()
plugins = current()
set_current(plugins)
worker._warm_imports()
worker._rehearse_try_output()
backend = flow.execution.task_runner._xcom_backend(plugins)
assert backend.deserialize(backend.serialize({"n": 1})) == {"n": 1}
loaded = load_dag_file(Path(sys.argv[1]))
assert loaded.dags and not loaded.errors, loaded.errors
found = sorted(name for name in sys.modules if name.split(".")[0] == "sqlalchemy")
print(" ".join(found[:5]) or "none")
"""

DAG = """
from datetime import datetime
from flow import DAG
from flow.operators import BashOperator, PythonOperator

def twice(value):
    return value * 2

with DAG("probe", schedule=None, start_date=datetime(2024, 1, 1)):
    made = PythonOperator(task_id="made", python_callable=lambda: 21)
    PythonOperator(task_id="twice", python_callable=twice, op_args=[made.output])
    BashOperator(task_id="echo", bash_command="echo {{ ds }}")
"""


def test_a_try_runs_without_importing_sqlalchemy(flow_home: Path) -> None:
    dag_file = flow_home / "dags" / "probe.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(DAG)
    probe = subprocess.run([sys.executable, "-c", PROBE, str(dag_file)], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "none", f"imported: {probe.stdout}"
