"""Builtin plugin: the core's operators (bash, python, empty, branching, short-circuit)."""

from __future__ import annotations

from flow.hookspecs import hookimpl
from flow.records import OperatorSpec

_MODULE = "flow.builtin.operators"


@hookimpl
def flow_operators() -> list[OperatorSpec]:
    return [
        OperatorSpec("BashOperator", f"{_MODULE}.bash:BashOperator", "Run a bash command."),
        OperatorSpec("PythonOperator", f"{_MODULE}.python:PythonOperator",
                     "Call a Python function."),
        OperatorSpec("BranchPythonOperator", f"{_MODULE}.python:BranchPythonOperator",
                     "Follow the branch a Python function chooses."),
        OperatorSpec("ShortCircuitOperator", f"{_MODULE}.python:ShortCircuitOperator",
                     "Skip downstream tasks when a Python function returns a falsy value."),
        OperatorSpec("EmptyOperator", f"{_MODULE}.empty:EmptyOperator", "Does nothing."),
    ]
