"""``flow plugins list`` and plugin commands, in a real ``flow`` process with fake distributions
on its PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BROKEN = "import acme_sdk_that_is_not_installed\n"

COMMANDS = """
    import click

    def flow_cli(cli):
        @cli.group()
        def acme():
            "Acme's commands."

        @acme.command()
        def hello():
            click.echo("hello from acme")

        @click.command("plugins")
        def fake_plugins():
            click.echo("a plugin replaced a core command")

        cli.add_command(fake_plugins)
"""


def run_flow(*args: str, sites: list[Path], home: Path, **env: str
             ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("FLOW__", "FLOW_STRICT"))}
    environ.update(FLOW_HOME=str(home), PYTHONPATH=os.pathsep.join(map(str, sites)), **env)
    return subprocess.run([sys.executable, "-m", "flow.cli.main", *args], env=environ,
                          capture_output=True, text=True, timeout=60)


def test_plugins_list_json_shows_a_failed_plugin_and_the_builtins(fake_distribution, tmp_path):
    broken = fake_distribution(BROKEN, name="flow-broken", version="0.3.0", on_sys_path=False)

    result = run_flow("plugins", "list", "--json", sites=[broken.site], home=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["distribution"] == "flow-broken"
    assert rows["broken"]["version"] == "0.3.0"
    assert "acme_sdk_that_is_not_installed" in rows["broken"]["reason"]
    assert rows["flow.builtin.executors"]["status"] == "active"
    assert rows["flow.builtin.executors"]["hooks"] == ["flow_executors"]
    assert "flow-broken" in result.stderr  # the load error is logged too


def test_plugins_list_table_shows_status_with_reason(fake_distribution, tmp_path):
    broken = fake_distribution(BROKEN, name="flow-broken", on_sys_path=False)

    result = run_flow("plugins", "list", sites=[broken.site], home=tmp_path,
                      FLOW__CORE__DISABLED_PLUGINS="flow.builtin.operators")

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "distribution", "version", "status", "hooks"]
    broken_line = next(line for line in lines if line.startswith("broken "))
    assert "failed: import of" in broken_line
    operators_line = next(line for line in lines if line.startswith("flow.builtin.operators"))
    assert "disabled: disabled by [core] disabled_plugins" in operators_line


def test_strict_mode_exits_non_zero_naming_the_distribution(fake_distribution, tmp_path):
    broken = fake_distribution(BROKEN, name="flow-broken", on_sys_path=False)

    result = run_flow("plugins", "list", sites=[broken.site], home=tmp_path,
                      FLOW_STRICT_PLUGINS="1")

    assert result.returncode != 0
    assert "flow-broken" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_commands_appear_in_help_and_run(fake_distribution, tmp_path):
    plugin = fake_distribution(COMMANDS, name="flow-acme", on_sys_path=False)

    helped = run_flow("--help", sites=[plugin.site], home=tmp_path)
    ran = run_flow("acme", "hello", sites=[plugin.site], home=tmp_path)

    assert "acme" in helped.stdout and "Acme's commands." in helped.stdout
    assert ran.returncode == 0 and ran.stdout.strip() == "hello from acme"


def test_plugin_cannot_replace_a_core_command(fake_distribution, tmp_path):
    plugin = fake_distribution(COMMANDS, name="flow-acme", on_sys_path=False)

    helped = run_flow("--help", sites=[plugin.site], home=tmp_path)
    listed = run_flow("plugins", "list", sites=[plugin.site], home=tmp_path)

    assert "a plugin tried to replace the core command 'plugins'" in helped.stderr
    assert listed.returncode == 0
    assert "a plugin replaced a core command" not in listed.stdout
    assert "flow-acme" in listed.stdout
