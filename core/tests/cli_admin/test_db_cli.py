"""flow db migrate|check|reset, through the CLI and the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import text

from flow.store.migrate import head_revision
from flow.store.session import get_engine

# The console script installed next to this interpreter (any venv, not one fixed path).
FLOW_SCRIPT = str(Path(sys.executable).with_name("flow"))


@pytest.mark.parametrize(("url", "dialect_marker"), [
    ("sqlite:///{home}/never-created.db", "CREATE TABLE connection"),
    ("postgresql://nobody@127.0.0.1:1/nowhere", "SERIAL NOT NULL"),
    ("mysql://nobody@127.0.0.1:1/nowhere", "AUTO_INCREMENT"),
])
def test_show_sql_prints_the_dialects_ddl_without_touching_the_database(
        flow_cli: Callable[..., Result], flow_home: Path, monkeypatch: pytest.MonkeyPatch,
        url: str, dialect_marker: str) -> None:
    url = url.format(home=flow_home)
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    result = flow_cli("db", "migrate", "--show-sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE task_instance" in result.output
    assert dialect_marker in result.output
    assert not (flow_home / "never-created.db").exists()


def test_check_fails_on_an_empty_database_and_passes_after_migrate(
        flow_cli: Callable[..., Result], flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__DATABASE__URL", f"sqlite:///{flow_home / 'fresh.db'}")
    result = flow_cli("db", "check")
    assert result.exit_code == 1
    assert "current revision: none" in result.output
    assert f"head revision: {head_revision()}" in result.output
    assert "run `flow db migrate`" in result.output
    assert flow_cli("db", "migrate").exit_code == 0
    result = flow_cli("db", "check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_of_an_unreachable_server_exits_1_and_hides_the_password(
        flow_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__DATABASE__URL", "postgresql://flow:hunter22@127.0.0.1:1/flow")
    result = flow_cli("db", "check")
    assert result.exit_code == 1
    assert "cannot reach the metadata database" in result.output
    assert "hunter22" not in result.output


def test_migrate_is_idempotent_on_every_database(flow_cli: Callable[..., Result],
                                                 db_url: str) -> None:
    result = flow_cli("db", "migrate")
    assert result.exit_code == 0, result.output
    assert "already at revision" in result.output
    assert flow_cli("db", "check").exit_code == 0


def test_reset_asks_first_and_empties_the_database(flow_cli: Callable[..., Result],
                                                   db_url: str) -> None:
    assert flow_cli("variables", "set", "keep", "me").exit_code == 0
    refused = flow_cli("db", "reset", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert flow_cli("variables", "get", "keep").output.strip() == "me"

    result = flow_cli("db", "reset", "--yes")
    assert result.exit_code == 0, result.output
    with get_engine().connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM variable")).scalar() == 0
    assert flow_cli("db", "check").exit_code == 0


def test_console_script_runs_db_check(db_url: str) -> None:
    done = subprocess.run([FLOW_SCRIPT, "db", "check"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"current revision: {head_revision()}" in done.stdout


def test_rotate_fernet_key_lets_the_old_key_be_dropped(
        flow_cli: Callable[..., Result], db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    old_key = os.environ["FLOW__CORE__FERNET_KEY"]
    new_key = Fernet.generate_key().decode()
    flow_cli("connections", "add", "db", "--conn-uri", "postgres://u:pw-before@h/db")
    flow_cli("variables", "set", "note", "kept")
    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", f"{new_key},{old_key}")
    result = flow_cli("db", "rotate-fernet-key")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 stored value(s)" in result.output
    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", new_key)
    assert "password: pw-before" in flow_cli("connections", "get", "db", "--reveal").output
    assert flow_cli("variables", "get", "note").output.strip() == "kept"


def test_a_server_database_is_never_migrated_implicitly(
        flow_cli: Callable[..., Result], empty_server_url: str) -> None:
    refused = flow_cli("connections", "list")
    assert refused.exit_code == 1
    assert "run `flow db migrate`" in refused.output
    check = flow_cli("db", "check")
    assert check.exit_code == 1 and "current revision: none" in check.output
    assert flow_cli("db", "migrate").exit_code == 0
    assert flow_cli("db", "check").exit_code == 0
    assert flow_cli("connections", "list").exit_code == 0
