"""The plugin module the ``flow.plugins`` entry point names: only hookimpls and records.

Classes are named by import string, so loading the plugin (every ``flow`` command does) imports
nothing but this module; ``operators`` is imported when a DAG or the catalog uses it.
"""

from __future__ import annotations

from flow import hookimpl
from flow.records import OperatorSpec


@hookimpl
def flow_operators() -> list[OperatorSpec]:
    return [
        OperatorSpec("GreetOperator", "flow_template.operators:GreetOperator",
                     "Logs a greeting and returns it as an XCom."),
    ]
