"""The DAG and task group that ``with`` blocks make current while a DAG file runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flow.authoring.dag import DAG
    from flow.authoring.taskgroup import TaskGroup

_dag_stack: list[DAG] = []
_group_stack: list[TaskGroup] = []
# Set while flow builds an operator for itself (unmapping a mapped task at run time): such an
# operator takes no DAG from the surrounding `with` block and is not a definition to collect.
_detached: ContextVar[bool] = ContextVar("flow_detached_operator", default=False)


def current_dag() -> DAG | None:
    return _dag_stack[-1] if _dag_stack else None


def current_task_group(dag: DAG | None) -> TaskGroup | None:
    """The innermost open TaskGroup of ``dag``, else the DAG's root group."""
    if dag is None:
        return None
    for group in reversed(_group_stack):
        if group.dag is dag:
            return group
    return dag.task_group


def push_dag(dag: DAG) -> None:
    _dag_stack.append(dag)


def pop_dag() -> None:
    _dag_stack.pop()


def push_group(group: TaskGroup) -> None:
    _group_stack.append(group)


def pop_group() -> None:
    _group_stack.pop()


def is_detached() -> bool:
    return _detached.get()


@contextmanager
def detached() -> Iterator[None]:
    token = _detached.set(True)
    try:
        yield
    finally:
        _detached.reset(token)
