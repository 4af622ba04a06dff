"""``flow plugins``: what is installed, what it provides, and what failed to load."""

from __future__ import annotations

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
