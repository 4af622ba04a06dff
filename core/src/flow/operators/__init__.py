"""The core's operators, importable as ``from flow.operators import BashOperator``."""

from __future__ import annotations

from flow.builtin.operators.bash import BashOperator
from flow.builtin.operators.empty import DummyOperator, EmptyOperator
from flow.builtin.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
)

__all__ = [
    "BashOperator",
    "BranchPythonOperator",
    "DummyOperator",
    "EmptyOperator",
    "PythonOperator",
    "ShortCircuitOperator",
]
