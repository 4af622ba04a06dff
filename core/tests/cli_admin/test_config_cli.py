"""flow config list|get|generate-fernet-key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from cryptography.fernet import Fernet

from flow.config import OPTIONS

Flow = Callable[..., Result]


def test_list_shows_value_and_source_and_hides_secrets(
        flow_cli: Flow, flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (flow_home / "flow.toml").write_text('[core]\nexecutor = "sequential"\n')
    monkeypatch.setenv("FLOW__DATABASE__URL", "postgresql://flow:hunter22@db/flow")
    result = flow_cli("config", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = {(r["section"], r["key"]): r for r in json.loads(result.output)}
    assert len(rows) == len(OPTIONS)
    assert rows[("core", "executor")]["value"] == "sequential"
    assert rows[("core", "executor")]["source"] == "file"
    assert rows[("core", "fernet_key")]["value"] == "***"
    assert rows[("core", "fernet_key")]["source"] == "env"
    assert rows[("core", "xcom_backend")]["source"] == "default"
    assert "hunter22" not in result.output
    assert rows[("database", "url")]["value"].startswith("postgresql://flow:***@db")


def test_list_one_section_as_a_table(flow_cli: Flow) -> None:
    result = flow_cli("config", "list", "--section", "logging")
    assert result.exit_code == 0
    assert "base_log_folder" in result.output and "executor" not in result.output
    assert flow_cli("config", "list", "--section", "nope").exit_code == 2


def test_get_prints_one_value_and_names_an_unknown_option(flow_cli: Flow) -> None:
    assert flow_cli("config", "get", "core", "xcom_backend").output.strip() == "database"
    assert flow_cli("config", "get", "core", "fernet_key").output.strip() == "***"
    unknown = flow_cli("config", "get", "core", "nope")
    assert unknown.exit_code == 1 and "unknown configuration option [core] nope" in unknown.output


def test_a_bad_value_in_the_environment_is_named(flow_cli: Flow,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__CORE__MAX_XCOM_SIZE", "lots")
    result = flow_cli("config", "list")
    assert result.exit_code == 1 and "FLOW__CORE__MAX_XCOM_SIZE" in result.output


def test_generated_fernet_key_is_usable(flow_cli: Flow) -> None:
    key = flow_cli("config", "generate-fernet-key").output.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_markdown_reference_lists_every_option(flow_cli: Flow) -> None:
    output = flow_cli("config", "list", "-o", "markdown").output
    for option in OPTIONS:
        assert f"`{option.env_var}`" in output


def test_configuration_doc_holds_the_generated_option_table() -> None:
    from flow.cli.config_command import options_markdown

    doc = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text()
    block = doc.split("<!-- options:start -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert block == options_markdown(), (
        "docs/configuration.md is stale: paste `flow config list --output markdown` into it")
