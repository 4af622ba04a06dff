"""flow variables set|get|list|delete|import|export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from sqlalchemy import select

from flow.store.models import EventLog
from flow.store.session import session_scope

Flow = Callable[..., Result]


def test_set_get_list_delete(flow_cli: Flow, db_url: str) -> None:
    assert flow_cli("variables", "set", "region", "eu-west-1", "--description",
                    "where we run").exit_code == 0
    assert flow_cli("variables", "get", "region").output.strip() == "eu-west-1"
    listed = json.loads(flow_cli("variables", "list", "-o", "json").output)
    assert listed == [{"key": "region", "value": "eu-west-1", "description": "where we run"}]
    assert flow_cli("variables", "delete", "region").exit_code == 0
    missing = flow_cli("variables", "get", "region")
    assert missing.exit_code == 1 and "variable 'region' not found" in missing.output
    assert flow_cli("variables", "get", "region", "--default", "x").output.strip() == "x"


def test_json_values_are_validated_and_pretty_printed(flow_cli: Flow, db_url: str) -> None:
    bad = flow_cli("variables", "set", "conf", "{nope", "--json")
    assert bad.exit_code == 2 and "not valid JSON" in bad.output
    assert flow_cli("variables", "set", "conf", '{"a": [1, 2]}', "--json").exit_code == 0
    assert json.loads(flow_cli("variables", "get", "conf", "--json").output) == {"a": [1, 2]}


def test_sensitive_variable_is_hidden_unless_revealed(flow_cli: Flow, db_url: str) -> None:
    flow_cli("variables", "set", "slack_token", "canary-slack-token")
    for args in (("get", "slack_token"), ("list",), ("list", "-o", "json")):
        assert "canary-slack-token" not in flow_cli("variables", *args).output
    assert flow_cli("variables", "get", "slack_token",
                    "--reveal").output.strip() == "canary-slack-token"
    with session_scope() as session:
        details = [row.details for row in session.scalars(select(EventLog))]
    assert "canary-slack-token" not in json.dumps(details)


def test_export_and_import_round_trip(flow_cli: Flow, db_url: str, tmp_path: Path) -> None:
    flow_cli("variables", "set", "plain", "text")
    flow_cli("variables", "set", "structured", '{"n": 1}', "--json")
    flow_cli("variables", "set", "db_password", "canary-db-password")
    safe = tmp_path / "vars.json"
    result = flow_cli("variables", "export", str(safe))
    assert "1 sensitive variable(s) left out" in result.stderr
    assert json.loads(safe.read_text()) == {"plain": "text", "structured": {"n": 1}}

    full = tmp_path / "vars.yaml"
    flow_cli("variables", "export", str(full), "--reveal")
    for key in ("plain", "structured", "db_password"):
        flow_cli("variables", "delete", key)
    assert flow_cli("variables", "import", str(full)).exit_code == 0
    assert flow_cli("variables", "get", "structured").output.strip() == '{"n": 1}'
    assert flow_cli("variables", "get", "db_password",
                    "--reveal").output.strip() == "canary-db-password"
