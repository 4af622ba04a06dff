"""Every user action is recorded exactly once, with its actor and source, from the web UI (real
login and CSRF), the REST API (bearer token) and the CLI (flow's own command line); no secret
ever reaches a record."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, login

CANARY = "canary-s3cr3t-7f31"  # a password or secret value in every action that carries one


def _run_id_of(records: list[Any]) -> str:
    [trigger] = [r for r in records if r.action == "dag_run.trigger"]
    return str(trigger.details["run_id"])


def _assert_once_each(records: list[Any], expected: list[tuple[str, str]], actor: str | None,
                      source: str) -> None:
    counts = Counter((r.action, r.target) for r in records)
    for action, target in expected:
        assert counts[(action, target)] == 1, (action, target, sorted(counts))
    for record in records:
        if actor is not None and record.action != "user.login_failed":
            assert record.actor == actor, record.label()
        assert record.source == source, record.label()
    assert len(records) == len(expected), sorted(counts)


def _assert_no_canary(db_url: str, records: list[Any]) -> None:
    from sqlalchemy import select

    from flow.store.session import make_engine
    from flow_audit.store import audit_record

    for record in records:
        assert CANARY not in json.dumps(record.as_dict()), record.label()
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(audit_record)).all()
    finally:
        engine.dispose()
    assert rows and not any(CANARY in str(tuple(row)) for row in rows)


def test_ui_actions_are_recorded_once_with_actor_and_source(
        app: Any, users: dict[str, str], parsed_dag: str, db_url: str,
        records: Callable[..., list[Any]]) -> None:
    from conftest import csrf_from

    anonymous = app.test_client()
    assert login(anonymous, "admin", CANARY).status_code == 401  # wrong password: refused
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    token = csrf_from(client.get("/dags").get_data(as_text=True))

    def post(path: str, **form: str) -> Any:
        response = client.post(path, data={"csrf_token": token, **form})
        assert response.status_code in (200, 302), (path, response.get_data(as_text=True))
        return response

    post(f"/dags/{parsed_dag}/trigger", run_id="ui_run")
    post(f"/dags/{parsed_dag}/pause", paused="true")
    post(f"/dags/{parsed_dag}/pause", paused="false")
    task_path = f"/dags/{parsed_dag}/runs/ui_run/tasks/first"
    post(f"{task_path}/mark", state="success")
    post(f"{task_path}/mark", state="failed")
    post(f"{task_path}/clear")
    post("/connections/new", conn_id="ui_db", conn_type="postgres", host="db.example",
         password=CANARY)
    post("/connections/ui_db/edit", conn_type="postgres", host="db2.example",
         password=CANARY + "-2")
    post("/connections/ui_db/delete")
    post("/variables/new", key="api_secret", val=CANARY)
    post("/variables/api_secret/edit", val=CANARY + "-2")
    post("/variables/api_secret/delete")
    post("/users", username="newcomer", password=CANARY, role="viewer")
    post("/users/newcomer/delete")
    post("/logout")

    recorded = records(kind="user_action")
    run = f"{parsed_dag}/ui_run"
    _assert_once_each(recorded, [
        ("user.login_failed", "admin"), ("user.login", "admin"),
        ("dag_run.trigger", run), ("dag.pause", parsed_dag), ("dag.unpause", parsed_dag),
        ("task_instance.mark_success", f"{run}/first"),
        ("task_instance.mark_failed", f"{run}/first"), ("task_instances.clear", run),
        ("connection.create", "ui_db"), ("connection.update", "ui_db"),
        ("connection.delete", "ui_db"), ("variable.create", "api_secret"),
        ("variable.update", "api_secret"), ("variable.delete", "api_secret"),
        ("user.create", "newcomer"), ("user.delete", "newcomer"), ("user.logout", "admin"),
    ], "admin", "ui")
    assert {r.remote_addr for r in recorded} == {"127.0.0.1"}
    _assert_no_canary(db_url, recorded)


def test_api_actions_are_recorded_once_with_actor_and_source(
        app: Any, users: dict[str, str], parsed_dag: str, db_url: str,
        records: Callable[..., list[Any]]) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}

    def call(method: str, path: str, body: dict[str, Any]) -> Any:
        response = client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
        assert response.status_code < 300, (path, response.get_data(as_text=True))
        return response

    call("POST", f"/dags/{parsed_dag}/dagRuns", {"run_id": "api_run"})
    call("PATCH", f"/dags/{parsed_dag}", {"is_paused": True})
    call("PATCH", f"/dags/{parsed_dag}", {"is_paused": False})
    tis = f"/dags/{parsed_dag}/dagRuns/api_run/taskInstances"
    call("PATCH", f"{tis}/first", {"state": "success"})
    call("PATCH", f"{tis}/first", {"state": "failed"})
    call("POST", f"/dags/{parsed_dag}/dagRuns/api_run/clearTaskInstances",
         {"task_ids": ["first"]})
    call("POST", "/connections", {"conn_id": "api_db", "conn_type": "postgres",
                                  "host": "db.example", "password": CANARY})
    call("PATCH", "/connections/api_db", {"password": CANARY + "-2"})
    call("DELETE", "/connections/api_db", {})
    call("POST", "/variables", {"key": "api_secret", "value": CANARY})
    call("PATCH", "/variables/api_secret", {"value": CANARY + "-2"})
    call("DELETE", "/variables/api_secret", {})
    call("POST", "/users", {"username": "newcomer", "password": CANARY, "role": "viewer"})
    call("DELETE", "/users/newcomer", {})

    recorded = records(kind="user_action")
    run = f"{parsed_dag}/api_run"
    _assert_once_each(recorded, [
        ("dag_run.trigger", run), ("dag.pause", parsed_dag), ("dag.unpause", parsed_dag),
        ("task_instance.mark_success", f"{run}/first"),
        ("task_instance.mark_failed", f"{run}/first"), ("task_instances.clear", run),
        ("connection.create", "api_db"), ("connection.update", "api_db"),
        ("connection.delete", "api_db"), ("variable.create", "api_secret"),
        ("variable.update", "api_secret"), ("variable.delete", "api_secret"),
        ("user.create", "newcomer"), ("user.delete", "newcomer"),
    ], "admin", "api")
    _assert_no_canary(db_url, recorded)


def test_cli_actions_are_recorded_once_with_actor_and_source(
        parsed_dag: str, db_url: str, records: Callable[..., list[Any]]) -> None:
    from flow.cli.main import cli

    def flow(*args: str, stdin: str | None = None) -> None:
        result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)

    flow("dags", "trigger", parsed_dag, "--run-id", "cli_run")
    flow("tasks", "mark", parsed_dag, "cli_run", "first", "--state", "success")
    flow("tasks", "mark", parsed_dag, "cli_run", "first", "--state", "failed")
    flow("tasks", "clear", parsed_dag, "cli_run", "-t", "first")
    flow("dags", "mark-run", parsed_dag, "cli_run", "--state", "failed")
    flow("dags", "pause", parsed_dag)
    flow("dags", "unpause", parsed_dag)
    flow("connections", "add", "cli_db", "--conn-uri", f"postgresql://u:{CANARY}@h/db")
    flow("connections", "add", "cli_db", "--conn-uri", f"postgresql://u:{CANARY}-2@h/db",
         "--overwrite")
    flow("connections", "delete", "cli_db")
    flow("variables", "set", "api_secret", CANARY)
    flow("variables", "set", "api_secret", CANARY + "-2")
    flow("variables", "delete", "api_secret")
    flow("users", "create", "newcomer", "--password-stdin", stdin=CANARY + "\n")
    flow("users", "reset-password", "newcomer", "--password-stdin", stdin=CANARY + "-2\n")
    flow("users", "delete", "newcomer", "--yes")

    recorded = records(kind="user_action")
    _assert_once_each(recorded, [
        ("dag_run.trigger", f"{parsed_dag}/cli_run"),
        ("task_instance.mark_success", f"{parsed_dag}/cli_run/first"),
        ("task_instance.mark_failed", f"{parsed_dag}/cli_run/first"),
        ("task_instances.clear", f"{parsed_dag}/cli_run"),
        ("dag_run.mark_failed", f"{parsed_dag}/cli_run"), ("dag.pause", parsed_dag),
        ("dag.unpause", parsed_dag), ("connection.create", "cli_db"),
        ("connection.update", "cli_db"), ("connection.delete", "cli_db"),
        ("variable.create", "api_secret"), ("variable.update", "api_secret"),
        ("variable.delete", "api_secret"), ("user.create", "newcomer"),
        ("user.reset_password", "newcomer"), ("user.delete", "newcomer"),
    ], getpass.getuser(), "cli")
    _assert_no_canary(db_url, recorded)


def _flow_command() -> list[str]:
    script = Path(sys.executable).with_name("flow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flow.cli.main"]


def test_a_flow_process_writes_its_records_before_it_exits(
        db_url: str, records: Callable[..., list[Any]]) -> None:
    # a long flush interval: only the exit handler can have written the record in time
    env = {**os.environ, "FLOW__AUDIT__FLUSH_INTERVAL": "60"}
    result = subprocess.run([*_flow_command(), "variables", "set", "region", "eu-north-1"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    [record] = records(action="variable.create")
    assert (record.target, record.source, record.actor) == ("region", "cli", getpass.getuser())


def test_login_failures_are_recorded_with_the_name_tried(
        app: Any, users: dict[str, str], records: Callable[..., list[Any]]) -> None:
    assert login(app.test_client(), "nobody", PASSWORD).status_code == 401

    [record] = records(action="user.login_failed")
    assert (record.actor, record.source, record.remote_addr) == ("nobody", "ui", "127.0.0.1")


@pytest.fixture(autouse=True)
def _no_stray_audit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW__AUDIT__RECORD_STATE_CHANGES", raising=False)
