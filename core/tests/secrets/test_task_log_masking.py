"""End to end: secrets a task reads never reach its log file, on every database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flow.secrets.connection import Connection
from flow.secrets.database import save_connection

# The console script installed next to this interpreter (any venv, not one fixed path).
FLOW_SCRIPT = str(Path(sys.executable).with_name("flow"))

DAG_FILE = textwrap.dedent('''
    import logging
    from datetime import datetime

    from flow import DAG, Connection, Variable
    from flow.operators import PythonOperator


    def use_secrets():
        conn = Connection.get("warehouse")
        print("password is", conn.password)
        logging.getLogger("etl").warning("uri %s", conn.get_uri())
        print("token is", Variable.get("api_token"), "region is", Variable.get("region"))


    with DAG("reads_secrets", start_date=datetime(2026, 1, 1), schedule=None):
        PythonOperator(task_id="use", python_callable=use_secrets)
''')


CANARIES = ("canary-db-pw", "canary-db-pw%2F1", "canary-api-token")


def _run_dag_reading_secrets(flow_home: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Store the secrets, run the DAG with `flow dags test`; (task log, the process)."""
    (flow_home / "dags" / "reads_secrets.py").write_text(DAG_FILE)
    save_connection(Connection("warehouse", "postgres", host="h", login="etl",
                               password="canary-db-pw/1"))
    monkeypatch.setenv("FLOW_VAR_API_TOKEN", "canary-api-token")
    monkeypatch.setenv("FLOW_VAR_REGION", "eu-north-1")
    done = subprocess.run([FLOW_SCRIPT, "dags", "test", "reads_secrets"], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    [log_file] = (flow_home / "logs").rglob("*.log")
    return log_file.read_text(), done


def test_connection_password_and_sensitive_variable_are_masked_in_the_task_log(
        db_url: str, flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = _run_dag_reading_secrets(flow_home, monkeypatch)
    assert "password is ***" in log and "token is *** region is eu-north-1" in log
    assert "uri postgres://etl:***@h" in log
    for canary in CANARIES:
        assert canary not in log


def test_secrets_are_masked_on_the_terminal_of_dags_test(
        sqlite_db: str, flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, done = _run_dag_reading_secrets(flow_home, monkeypatch)
    for canary in CANARIES:
        assert canary not in done.stdout + done.stderr
