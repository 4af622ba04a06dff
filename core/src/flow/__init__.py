"""flow: author, schedule and monitor workflows in Python.

The public authoring API. Names import lazily, so ``import flow`` stays cheap: a DAG file pays
only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flow.hookspecs import hookimpl

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "DAG": "flow.authoring.dag",
    "dag": "flow.authoring.dag",
    "task": "flow.authoring.taskflow",
    "BaseOperator": "flow.authoring.baseoperator",
    "chain": "flow.authoring.baseoperator",
    "cross_downstream": "flow.authoring.baseoperator",
    "TaskGroup": "flow.authoring.taskgroup",
    "task_group": "flow.authoring.taskgroup",
    "Param": "flow.authoring.params",
    "TriggerRule": "flow.authoring.trigger_rule",
    "XComArg": "flow.authoring.xcom_arg",
    "Connection": "flow.secrets.connection",
    "Variable": "flow.secrets.variable",
    "BaseHook": "flow.secrets.hooks",
    "TaskSkipped": "flow.exceptions",
    "TaskFailedNoRetry": "flow.exceptions",
}

__all__ = ["__version__", "hookimpl", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from flow.authoring.baseoperator import BaseOperator, chain, cross_downstream
    from flow.authoring.dag import DAG, dag
    from flow.authoring.params import Param
    from flow.authoring.taskflow import task
    from flow.authoring.taskgroup import TaskGroup, task_group
    from flow.authoring.trigger_rule import TriggerRule
    from flow.authoring.xcom_arg import XComArg
    from flow.exceptions import TaskFailedNoRetry, TaskSkipped
    from flow.secrets.connection import Connection
    from flow.secrets.hooks import BaseHook
    from flow.secrets.variable import Variable
