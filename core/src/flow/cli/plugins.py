"""``flow plugins``: what is installed, what it provides, and what failed to load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flow.cli.output import echo_rows, output_option


def _row(info: Any) -> dict[str, Any]:
    status = f"{info.status}: {info.reason}" if info.reason else info.status
    return {"name": info.name, "distribution": info.distribution, "version": info.version,
            "status": status, "hooks": info.hooks}


@click.group()
def plugins() -> None:
    """List installed plugins and what they provide."""


@plugins.command("list")
@output_option
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
def list_plugins(output: str, as_json: bool) -> None:
    """Every plugin: name, distribution, version, status (active, disabled, failed: reason) and
    the hooks it implements. Builtins come first, in the order they are registered."""
    from flow.plugins import current

    infos = current().plugins()
    if as_json or output != "table":
        echo_rows([info.as_dict() for info in infos], "json" if as_json else output)
    else:
        echo_rows([_row(info) for info in infos],
                  columns=["name", "distribution", "version", "status", "hooks"])


@plugins.command("show")
@click.argument("name")
@output_option
def show_plugin(name: str, output: str) -> None:
    """One plugin: its details and the names it registers (executors, operators, ...)."""
    from flow.plugins import REGISTRIES, current

    manager = current()
    info = manager.plugin_info(name)
    if info is None:
        known = ", ".join(i.name for i in manager.plugins())
        raise click.ClickException(f"no plugin named {name!r}; installed: {known}")
    details = info.as_dict()
    for hook in REGISTRIES:
        provided = [record_name for record_name in getattr(manager, hook.removeprefix("flow_"))()
                    if (owner := manager.provider(hook, record_name)) and owner.name == info.name]
        if provided:
            details[hook.removeprefix("flow_")] = provided
    if output == "table":
        width = max(len(key) for key in details)
        for key, value in details.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            click.echo(f"{key.ljust(width)}  {shown}")
    else:
        echo_rows([details], output)


@plugins.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="Folder to create flow-NAME in (in the flow repository: plugins).")
def new_plugin(name: str, parent: Path) -> None:
    """Create a plugin package flow-NAME from the plugin template: pyproject with the entry
    point and a flow-core range, plugin.py, an operator with a hook and a connection type of its
    own, an event listener, tests including the conformance suites, and a README."""
    from flow.testing.scaffold import ScaffoldError
    from flow.testing.scaffold import new_plugin as scaffold

    try:
        target = scaffold(name, parent)
    except ScaffoldError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"created {target}")
    click.echo(f"next: pip install -e {target}[test] && pytest {target / 'tests'}")


@plugins.command("verify")
@click.argument("distribution")
@click.option("--tests", "tests", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The plugin's conformance tests (default: "
              "tests/test_conformance.py of an editable install).")
@click.option("--strict", is_flag=True,
              help="Run tests newer than the plugin's pinned conformance version strictly.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the JSON report to this file.")
def verify_plugin(distribution: str, tests: Path | None, strict: bool,
                  report_path: Path | None) -> None:
    """Run the package checks and the plugin's declared conformance suites on the installed
    DISTRIBUTION and print the JSON report; exits non-zero when a check fails."""
    import json
    import sys

    from flow.testing.verify import VerifyError, verify

    try:
        code, report = verify(distribution, tests, strict=strict)
    except VerifyError as err:
        raise click.ClickException(str(err)) from None
    text = json.dumps(report, indent=2, sort_keys=True)
    if report_path is not None:
        report_path.write_text(text + "\n")
    click.echo(text)
    failed = sorted(node for suite in report.get("suites", [])
                    for node, test in suite["tests"].items()
                    if test["outcome"] in {"failed", "error"})
    for node in failed:
        click.echo(f"FAILED {node}", err=True)
    sys.exit(code)
