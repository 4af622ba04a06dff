"""The plugin module the ``flow.plugins`` entry point names: only hookimpls and records.

Loading it imports neither Celery nor click's commands: the executor is named by an import
string, and ``flow celery`` is built only when the CLI asks for its commands.
"""

from __future__ import annotations

from typing import Any

from flow import hookimpl
from flow.records import ExecutorSpec


@hookimpl
def flow_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("celery", "flow_celery.executor:CeleryExecutor",
                         "Publishes each try to a Celery queue; `flow celery worker` runs it.")]


@hookimpl
def flow_cli(cli: Any) -> None:
    from flow_celery.cli import celery

    cli.add_command(celery)
