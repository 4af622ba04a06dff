"""flow connections add|get|list|delete|import|export|test."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select, text

from flow.store.event_log import os_user
from flow.store.models import EventLog
from flow.store.session import get_engine, session_scope

CANARY = "canary-Pa55w0rd"
# The console script installed next to this interpreter (any venv, not one fixed path).
FLOW_SCRIPT = str(Path(sys.executable).with_name("flow"))
Flow = Callable[..., Result]


def test_password_appears_only_with_reveal(flow_cli: Flow, db_url: str) -> None:
    added = flow_cli("connections", "add", "warehouse",
                     "--conn-uri", f"postgres://etl:{CANARY}@db.example.com:5432/dw?sslmode=require")
    assert added.exit_code == 0, added.output
    for args in (("get", "warehouse"), ("get", "warehouse", "-o", "json"), ("list",),
                 ("list", "-o", "json"), ("list", "-o", "yaml")):
        result = flow_cli("connections", *args)
        assert result.exit_code == 0, result.output
        assert CANARY not in result.output, args
    assert "password: ***" in flow_cli("connections", "get", "warehouse").output
    revealed = flow_cli("connections", "get", "warehouse", "--reveal").output
    assert f"password: {CANARY}" in revealed
    with get_engine().connect() as connection:
        stored = connection.execute(text("SELECT password FROM connection")).scalar()
    assert CANARY not in stored


def test_add_by_fields_and_duplicate_id_is_refused(flow_cli: Flow, db_url: str) -> None:
    result = flow_cli("connections", "add", "api", "--conn-type", "http", "--conn-host",
                      "example.com", "--conn-port", "8080", "--conn-login", "me",
                      "--conn-password", CANARY, "--conn-extra", '{"api_key": "k-123456"}')
    assert result.exit_code == 0, result.output
    shown = json.loads(flow_cli("connections", "get", "api", "-o", "json").output)[0]
    assert (shown["host"], shown["port"], shown["extra"]) == ("example.com", 8080,
                                                               {"api_key": "***"})
    again = flow_cli("connections", "add", "api", "--conn-uri", "http://other")
    assert again.exit_code == 1
    assert "connection 'api' already exists" in again.output
    assert flow_cli("connections", "add", "api", "--conn-uri", "http://other",
                    "--overwrite").exit_code == 0


def test_conflicting_ways_of_giving_a_connection_are_refused(flow_cli: Flow,
                                                             db_url: str) -> None:
    result = flow_cli("connections", "add", "x", "--conn-uri", "http://a", "--conn-host", "b")
    assert result.exit_code == 2
    assert "either as --conn-uri" in result.output


def test_delete_and_unknown_ids(flow_cli: Flow, db_url: str) -> None:
    flow_cli("connections", "add", "gone", "--conn-uri", "http://example.com")
    assert flow_cli("connections", "delete", "gone").exit_code == 0
    missing = flow_cli("connections", "delete", "gone")
    assert missing.exit_code == 1 and "'gone' is not in the metadata database" in missing.output
    unknown = flow_cli("connections", "get", "gone")
    assert unknown.exit_code == 1 and "connection 'gone' not found" in unknown.output


def test_add_without_a_fernet_key_says_how_to_make_one(
        flow_cli: Flow, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW__CORE__FERNET_KEY")
    result = flow_cli("connections", "add", "x", "--conn-uri", f"http://u:{CANARY}@h")
    assert result.exit_code == 1
    assert "flow config generate-fernet-key" in result.output


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_export_then_import_round_trips_with_reveal(flow_cli: Flow, db_url: str,
                                                    tmp_path: Path, suffix: str) -> None:
    flow_cli("connections", "add", "a", "--conn-uri", f"postgres://u:{CANARY}@h:1/db")
    flow_cli("connections", "add", "b", "--conn-type", "http", "--conn-host", "example.com",
             "--conn-extra", '{"token": "canary-token", "timeout": 5}')
    safe = tmp_path / f"safe{suffix}"
    result = flow_cli("connections", "export", str(safe))
    assert result.exit_code == 0 and "left out" in result.stderr
    assert CANARY not in safe.read_text() and "canary-token" not in safe.read_text()

    full = tmp_path / f"full{suffix}"
    result = flow_cli("connections", "export", str(full), "--reveal")
    assert "plain text" in result.stderr
    assert oct(full.stat().st_mode & 0o777) == "0o600"
    data = yaml.safe_load(full.read_text())  # YAML reads JSON too
    assert data["a"]["password"] == CANARY and data["b"]["extra"]["token"] == "canary-token"

    refused = flow_cli("connections", "import", str(full))
    assert refused.exit_code == 1 and "already exist" in refused.output
    for conn_id in ("a", "b"):
        flow_cli("connections", "delete", conn_id)
    assert flow_cli("connections", "import", str(full)).exit_code == 0
    revealed = json.loads(flow_cli("connections", "get", "a", "--reveal", "-o", "json").output)
    assert revealed[0]["password"] == CANARY


def test_import_error_names_the_file_and_connection(flow_cli: Flow, db_url: str,
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"broken": {"host": "h"}}))
    result = flow_cli("connections", "import", str(bad))
    assert result.exit_code == 1
    assert str(bad) in result.output and "'broken' has no conn_type" in result.output


def test_changes_are_recorded_with_the_os_user_and_no_secret(
        flow_cli: Flow, db_url: str, actions: object) -> None:
    flow_cli("connections", "add", "audited", "--conn-uri", f"mysql://u:{CANARY}@h/db")
    flow_cli("connections", "delete", "audited")
    with session_scope() as session:
        rows = session.scalars(select(EventLog).order_by(EventLog.id)).all()
    assert [(r.actor, r.action, r.target, r.source) for r in rows] == [
        (os_user(), "connection.create", "audited", "cli"),
        (os_user(), "connection.delete", "audited", "cli")]
    assert CANARY not in json.dumps([r.details for r in rows])
    recorded = actions.actions  # type: ignore[attr-defined]
    assert [a[1] for a in recorded] == ["connection.create", "connection.delete"]
    assert CANARY not in repr(recorded)


def test_sqlite_connection_test_reports_success_and_failure(flow_cli: Flow, db_url: str,
                                                            tmp_path: Path) -> None:
    flow_cli("connections", "add", "local", "--conn-type", "sqlite", "--conn-host",
             str(tmp_path / "data.db"))
    result = flow_cli("connections", "test", "local")
    assert result.exit_code == 0, result.output
    assert "works" in result.output
    flow_cli("connections", "add", "nowhere", "--conn-uri",
             "postgres://nobody:pw-unused@127.0.0.1:1/none")
    failed = flow_cli("connections", "test", "nowhere")
    assert failed.exit_code == 1 and "connection 'nowhere' failed" in failed.output


@pytest.fixture
def http_server() -> Iterator[int]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_connection_test_makes_a_request(flow_cli: Flow, db_url: str,
                                              http_server: int) -> None:
    flow_cli("connections", "add", "web", "--conn-uri", f"http://127.0.0.1:{http_server}")
    result = flow_cli("connections", "test", "web")
    assert result.exit_code == 0, result.output
    assert "HTTP 204" in result.output


def test_a_type_without_a_testing_hook_says_so(flow_cli: Flow, db_url: str) -> None:
    flow_cli("connections", "add", "misc", "--conn-type", "generic", "--conn-host", "h")
    result = flow_cli("connections", "test", "misc")
    assert result.exit_code == 1 and "cannot be tested" in result.output


def test_console_script_adds_and_hides_a_password(db_url: str) -> None:
    env = os.environ.copy()
    add = subprocess.run([FLOW_SCRIPT, "connections", "add", "script", "--conn-uri",
                          f"postgres://u:{CANARY}@h/db"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert add.returncode == 0, add.stderr
    get = subprocess.run([FLOW_SCRIPT, "connections", "get", "script"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert get.returncode == 0, get.stderr
    assert "password: ***" in get.stdout and CANARY not in get.stdout + get.stderr
