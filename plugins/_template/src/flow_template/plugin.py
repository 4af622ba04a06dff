"""The plugin module the ``flow.plugins`` entry point names: only hookimpls and records.

Classes are named by import string, so loading the plugin (every ``flow`` command does) imports
nothing but this module; ``operators`` and ``hooks`` are imported when a DAG or the catalog uses
them.
"""

from __future__ import annotations

import logging
from typing import Any

from flow import hookimpl
from flow.records import ConnectionField, ConnectionTypeSpec, OperatorSpec

log = logging.getLogger(__name__)

CONN_TYPE = "template_greeting"


@hookimpl
def flow_operators() -> list[OperatorSpec]:
    return [
        OperatorSpec("GreetOperator", "flow_template.operators:GreetOperator",
                     "Greets a name with the salutation of a greeting connection."),
    ]


@hookimpl
def flow_connection_types() -> list[ConnectionTypeSpec]:
    return [
        ConnectionTypeSpec(
            CONN_TYPE, "Greeting service", hook="flow_template.hooks:GreetingHook",
            fields=(ConnectionField("host", "Service host"),
                    ConnectionField("password", "API key", sensitive=True),
                    ConnectionField("salutation", "Salutation", placeholder="Hello")),
            description="Where greetings come from."),
    ]


@hookimpl
def flow_task_instance_state_changed(ti: Any, previous: str | None, current: str) -> None:
    """An event listener: called in the process that changed the state. Keep it fast and never
    raise (an exception is logged and ignored)."""
    if current == "failed":
        log.warning("task %s.%s failed (try %s)", ti.dag_id, ti.task_id, ti.try_number)
