"""`flow dags ...` and `flow tasks ...` through the real click commands."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flow.cli.main import cli

PIPELINE = textwrap.dedent("""
    from datetime import datetime
    from flow import DAG, Param, task
    from flow.operators import BashOperator, EmptyOperator

    with DAG("pipeline", schedule="@daily", start_date=datetime(2024, 1, 1), tags=["demo"],
             params={"n": Param(2, type="integer", minimum=1)},
             default_args={"owner": "data"}) as dag:
        hello = BashOperator(task_id="hello", bash_command="echo hello from {{ params.n }}")

        @task
        def count(params=None):
            return list(range(params["n"]))

        done = EmptyOperator(task_id="done")
        hello >> count() >> done
""")
BROKEN = "# a flow dag\nfrom flow import DAG\nDAG('broken', schedule='not a cron')\n"


@pytest.fixture
def dags(flow_home: Path) -> Path:
    folder = flow_home / "dags"
    (folder / "pipeline.py").write_text(PIPELINE)
    (folder / "broken_dag.py").write_text(BROKEN)
    return folder


def flow(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_dags_list_shows_the_parsed_dags(dags: Path, db_url: str) -> None:
    result = flow("dags", "list", "--output", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["dag_id"] == "pipeline" and row["fileloc"] == "pipeline.py"
    assert row["owners"] == "data" and row["tags"] == ["demo"] and row["is_paused"] is True


def test_list_import_errors_names_file_and_line(dags: Path, db_url: str) -> None:
    result = flow("dags", "list-import-errors", "--output", "json")
    [row] = json.loads(result.output)
    assert row["filename"] == str(dags / "broken_dag.py")
    assert row["lineno"] == 3
    assert "not a cron" in row["message"]


def test_show_prints_the_graph_and_dot(dags: Path, sqlite_db: str) -> None:
    text = flow("dags", "show", "pipeline").output
    assert "hello (BashOperator)" in text and "└─> count" in text
    dot = flow("dags", "show", "pipeline", "--dot").output
    assert dot.startswith('digraph "pipeline"') and '"hello" -> "count";' in dot


def test_details_reads_the_stored_dag(dags: Path, sqlite_db: str) -> None:
    result = flow("dags", "details", "pipeline", "--output", "json")
    [details] = json.loads(result.output)
    assert details["timetable"] == "cron" and details["tasks"] == 3
    assert details["params"]["n"]["default"] == 2


def test_an_unknown_dag_is_an_error_pointing_at_the_import_errors(dags: Path,
                                                                  sqlite_db: str) -> None:
    result = CliRunner().invoke(cli, ["dags", "show", "broken"])
    assert result.exit_code == 1
    assert "no DAG 'broken'" in result.output and "list-import-errors" in result.output


def test_tasks_list_and_tree(dags: Path, sqlite_db: str) -> None:
    rows = json.loads(flow("tasks", "list", "pipeline", "-o", "json").output)
    assert [r["task_id"] for r in rows] == ["hello", "count", "done"]
    tree = flow("tasks", "list", "pipeline", "--tree").output.splitlines()
    assert tree == ["hello (BashOperator)", "    count (DecoratedPythonOperator)",
                    "        done (EmptyOperator)"]


def test_dags_test_runs_the_dag_and_prints_a_summary(dags: Path, db_url: str) -> None:
    result = flow("dags", "test", "pipeline", "2024-02-01", "--conf", '{"n": 3}')
    assert result.exit_code == 0, result.output
    assert "DAG run manual__2024-02-01T00:00:00+00:00 of pipeline: success" in result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["hello", "success", "1"] == lines[2][:3]


def test_dags_test_refuses_a_conf_that_breaks_a_param(dags: Path, sqlite_db: str) -> None:
    result = CliRunner().invoke(cli, ["dags", "test", "pipeline", "--conf", '{"n": 0}'])
    assert result.exit_code == 1
    assert "conf was refused" in result.output and "'n'" in result.output


def test_dags_test_exits_non_zero_when_the_run_fails(flow_home: Path, sqlite_db: str) -> None:
    (flow_home / "dags" / "fails_dag.py").write_text(textwrap.dedent("""
        from datetime import datetime
        from flow import DAG
        from flow.operators import BashOperator
        with DAG("fails", schedule=None, start_date=datetime(2024, 1, 1)):
            BashOperator(task_id="nope", bash_command="exit 3")
    """))
    result = CliRunner().invoke(cli, ["dags", "test", "fails"])
    assert result.exit_code == 1
    assert "of fails: failed" in result.output


def test_tasks_test_runs_one_task_with_its_log_on_stdout(dags: Path, sqlite_db: str) -> None:
    result = flow("tasks", "test", "pipeline", "hello", "2024-02-01")
    assert result.exit_code == 0, result.output
    assert "hello from 2" in result.output
    assert "hello: success" in result.output


RETRYING = textwrap.dedent("""
    from datetime import datetime, timedelta
    from flow import DAG
    from flow.operators import BashOperator
    with DAG("retrying", schedule=None, start_date=datetime(2024, 1, 1)):
        BashOperator(task_id="nope", bash_command="exit 3", retries=2,
                     retry_delay=timedelta(hours=1))
""")


def test_dags_test_all_runs_every_dag_and_fails_if_one_fails(dags: Path, sqlite_db: str) -> None:
    (dags / "retrying.py").write_text(RETRYING)
    result = CliRunner().invoke(cli, ["dags", "test", "--all", "--no-wait-retries"])
    assert result.exit_code == 1
    summary = [line.split() for line in result.output.split("== summary", 1)[1].splitlines()]
    states = {row[0]: row[1] for row in summary if len(row) > 2}
    assert states["pipeline"] == "success" and states["retrying"] == "failed"
    assert "failed: retrying" in result.output
    assert "1 DAG file(s) failed to import" in result.output
    # --no-wait-retries: three tries at once instead of waiting two hours
    rows = [line.split() for line in result.output.splitlines()]
    assert ["nope", "failed", "3"] in [row[:3] for row in rows]
