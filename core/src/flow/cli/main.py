"""The ``flow`` command: core command groups load lazily; plugins add theirs via ``flow_cli``.

``flow --help`` imports neither SQLAlchemy nor any plugin's dependencies: each core group is an
import string resolved when that group runs, and plugin commands are added only when a name is
not a core command or when the help lists every command.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

# name -> "module:attribute" of a click command; resolved on first use.
CORE_COMMANDS: dict[str, str] = {
    "config": "flow.cli.config_command:config",
    "connections": "flow.cli.connections:connections",
    "backfill": "flow.cli.backfill:backfill",
    "dags": "flow.cli.dags:dags",
    "db": "flow.cli.db:db",
    "plugins": "flow.cli.plugins:plugins",
    "pools": "flow.cli.pools:pools",
    "scheduler": "flow.cli.scheduler:scheduler",
    "standalone": "flow.cli.standalone:standalone",
    "tasks": "flow.cli.tasks:tasks",
    "users": "flow.cli.users:users",
    "variables": "flow.cli.variables:variables",
    "webserver": "flow.cli.webserver:webserver",
}

CORE_HELP: dict[str, str] = {
    "config": "Show the configuration and make a Fernet key.",
    "connections": "Manage connections to external systems.",
    "backfill": "Run a DAG over a range of past dates.",
    "dags": "List, inspect, trigger, pause and test DAGs.",
    "db": "Create, upgrade and check the metadata database.",
    "plugins": "List installed plugins and what they provide.",
    "pools": "Manage pools that bound concurrent tasks.",
    "scheduler": "Run the scheduler.",
    "standalone": "Run scheduler and web server on one machine.",
    "tasks": "List, test and run tasks.",
    "users": "Manage web UI and API users and tokens.",
    "variables": "Manage variables.",
    "webserver": "Run the web UI and REST API.",
}


class FlowGroup(click.Group):
    """A group whose core commands import lazily and whose plugins extend it on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from flow.plugins import current

        extra = click.Group()
        current().extend_cli(extra)
        for name, command in extra.commands.items():
            if name in CORE_COMMANDS:
                logging.getLogger(__name__).error(
                    "a plugin tried to replace the core command %r; ignored", name)
                continue
            self.add_command(command, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Only help and shell completion list commands; running one goes through get_command.
        self._add_plugin_commands()
        return sorted({*CORE_COMMANDS, *self.commands})

    def invoke(self, ctx: click.Context) -> Any:
        # flow's own errors carry a message a user can act on: show it, not a traceback.
        from flow.exceptions import FlowException

        try:
            return super().invoke(ctx)
        except FlowException as err:
            raise click.ClickException(str(err)) from err

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in CORE_COMMANDS:
            module_name, _, attribute = CORE_COMMANDS[name].partition(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        if name not in self.commands:
            self._add_plugin_commands()
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Core commands describe themselves without being imported, so --help stays fast.
        self._add_plugin_commands()
        rows = [(name, CORE_HELP.get(name, "")) for name in CORE_COMMANDS]
        rows += [(name, cmd.get_short_help_str(limit=formatter.width - 6 - len(name)))
                 for name, cmd in sorted(self.commands.items()) if name not in CORE_COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


@click.group(cls=FlowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flow-core", prog_name="flow")
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages of flow itself.")
def cli(verbose: bool) -> None:
    """flow: author, schedule and monitor workflows.

    Configuration comes from $FLOW_HOME/flow.toml (FLOW_HOME defaults to ~/flow) and
    FLOW__SECTION__KEY environment variables.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # A command may run tasks in-process (`flow dags test`): whatever their log records carry
    # reaches this terminal, so the terminal's handler masks secrets as the task log does.
    from flow.secrets.masking import MaskingFilter

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


def main() -> None:
    cli(prog_name="flow")


if __name__ == "__main__":
    main()
