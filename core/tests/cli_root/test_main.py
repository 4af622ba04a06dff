"""The ``flow`` command itself: lazy core commands, a fast --help, errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from flow.cli.main import CORE_COMMANDS, CORE_HELP, cli


def run(code: str, tmp_path) -> str:
    env = {**os.environ, "FLOW_HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True).stdout


def test_help_lists_every_core_command_with_its_summary():
    result = CliRunner().invoke(cli, ["--help"])

    assert result.exit_code == 0
    for name in CORE_COMMANDS:
        assert f"{name}  " in result.output
        assert CORE_HELP[name] in result.output


def test_every_core_command_has_a_summary():
    assert set(CORE_HELP) == set(CORE_COMMANDS)


def test_help_imports_no_core_command_module_nor_sqlalchemy(tmp_path):
    imported = run(
        "import sys, contextlib, io\n"
        "from flow.cli.main import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m == 'sqlalchemy' or m.startswith('flow.cli.')))",
        tmp_path)

    assert imported.strip() == "['flow.cli.main']"


def test_core_command_import_string_resolves_when_the_command_runs():
    result = CliRunner().invoke(cli, ["plugins", "list", "--output", "json"])

    assert result.exit_code == 0, result.output
    assert '"flow.builtin.executors"' in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])

    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_flow_errors_print_a_message_and_exit_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FLOW__CORE__DISABLED_PLUGINS", "x")
    monkeypatch.setenv("FLOW__CORE__STRICT_PLUGINS", "not-a-bool")
    from flow import plugins

    plugins.set_current(None)
    try:
        result = CliRunner().invoke(cli, ["plugins", "list"])
    finally:
        plugins.set_current(None)

    assert result.exit_code == 1
    assert "Error: [core] strict_plugins from FLOW__CORE__STRICT_PLUGINS must be bool" \
        in result.output


def test_version_option_names_flow():
    result = CliRunner().invoke(cli, ["--version"])

    assert result.exit_code == 0
    assert result.output.startswith("flow, version ")


def test_python_dash_m_flow_runs_the_flow_command(tmp_path):
    env = {**os.environ, "FLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "flow", "--version"], env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "flow" in result.stdout
