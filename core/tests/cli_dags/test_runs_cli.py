"""`flow dags trigger|pause|unpause|list-runs|state`, `flow pools` and `flow backfill` through
the real click commands and database."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flow.cli.main import cli

DAILY = textwrap.dedent("""
    from datetime import datetime
    from flow import DAG, Param
    from flow.operators import EmptyOperator

    with DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1),
             params={"n": Param(2, type="integer", minimum=1)}):
        EmptyOperator(task_id="a")
""")


@pytest.fixture
def dags(flow_home: Path) -> Path:
    (flow_home / "dags" / "daily.py").write_text(DAILY)
    return flow_home / "dags"


def flow(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_trigger_then_duplicate_run_id_is_refused_and_nothing_created(dags: Path,
                                                                     db_url: str) -> None:
    first = flow("dags", "trigger", "daily", "--run-id", "r1", "--conf", '{"n": 3}',
                 "--logical-date", "2024-02-01T00:00:00+00:00", "-o", "json")
    assert first.exit_code == 0, first.output
    [row] = json.loads(first.output)
    assert (row["run_id"], row["state"], row["conf"]) == ("r1", "queued", {"n": 3})
    again = flow("dags", "trigger", "daily", "--run-id", "r1")
    assert again.exit_code == 1
    assert "already has a run with run id 'r1'" in again.output
    assert "Nothing was created" in again.output
    runs = json.loads(flow("dags", "list-runs", "daily", "-o", "json").output)
    assert [r["run_id"] for r in runs] == ["r1"]
    assert flow("dags", "state", "daily", "r1").output.strip() == "queued"


def test_trigger_with_conf_breaking_a_param_names_it(dags: Path, sqlite_db: str) -> None:
    result = flow("dags", "trigger", "daily", "--conf", '{"n": 0}')
    assert result.exit_code == 1 and "'n'" in result.output
    assert json.loads(flow("dags", "list-runs", "daily", "-o", "json").output) == []


def test_pause_and_unpause_show_in_dags_list(dags: Path, sqlite_db: str) -> None:
    assert "is unpaused" in flow("dags", "unpause", "daily").output
    [row] = json.loads(flow("dags", "list", "-o", "json").output)
    assert row["is_paused"] is False
    assert "is paused" in flow("dags", "pause", "daily").output
    [row] = json.loads(flow("dags", "list", "-o", "json").output)
    assert row["is_paused"] is True
    missing = flow("dags", "pause", "nope")
    assert missing.exit_code == 1 and "no DAG 'nope'" in missing.output


def test_state_of_an_unknown_run_says_where_to_look(dags: Path, sqlite_db: str) -> None:
    flow("dags", "list")
    result = flow("dags", "state", "daily", "nope")
    assert result.exit_code == 1 and "flow dags list-runs daily" in result.output


def test_pools_set_list_delete(flow_home: Path, db_url: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__CORE__DEFAULT_POOL_SLOTS", "7")
    assert flow("pools", "set", "etl", "4", "--description", "nightly").exit_code == 0
    assert "pool: etl" in flow("pools", "list", "-o", "yaml").output
    rows = {r["pool"]: r for r in json.loads(flow("pools", "list", "-o", "json").output)}
    assert rows["default_pool"]["slots"] == 7
    assert (rows["etl"]["slots"], rows["etl"]["open"], rows["etl"]["description"]) == (
        4, 4, "nightly")
    assert flow("pools", "delete", "etl").exit_code == 0
    refused = flow("pools", "delete", "default_pool")
    assert refused.exit_code == 1 and "cannot be deleted" in refused.output
    assert [r["pool"] for r in json.loads(flow("pools", "list", "-o", "json").output)] == [
        "default_pool"]


def test_backfill_dry_run_create_list_and_cancel(dags: Path, db_url: str) -> None:
    dry = flow("backfill", "create", "daily", "--from", "2024-01-01", "--to", "2024-01-03",
               "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.output
    assert [p["action"] for p in json.loads(dry.output)] == ["create"] * 3
    assert json.loads(flow("backfill", "list", "-o", "json").output) == []
    created = flow("backfill", "create", "daily", "--from", "2024-01-01", "--to", "2024-01-03",
                   "--max-active-runs", "2")
    [row] = json.loads(flow("backfill", "list", "-o", "json").output)
    assert created.exit_code == 0 and f"backfill {row['id']} of daily" in created.output
    assert (row["state"], row["total"], row["success"]) == ("running", 3, 0)
    second = flow("backfill", "create", "daily", "--from", "2024-01-01", "--to", "2024-01-02")
    assert second.exit_code == 1 and "already has a running backfill" in second.output
    assert flow("backfill", "cancel", str(row["id"])).exit_code == 0
    [row] = json.loads(flow("backfill", "list", "-o", "json").output)
    assert row["state"] == "cancelled"
    backwards = flow("backfill", "create", "daily", "--from", "2024-01-05", "--to", "2024-01-01")
    assert backwards.exit_code == 1 and "is before --from" in backwards.output
