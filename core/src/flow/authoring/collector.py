"""Collect the DAGs and tasks a DAG file creates while it is imported.

The DAG processor wraps the import in :func:`collect_definitions`; DAG and operator constructors
call :func:`record_dag` / :func:`record_task`, which cost one ContextVar lookup when no collection
is active.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flow.authoring.dag import DAG

_active: ContextVar[Collected | None] = ContextVar("flow_collected_definitions", default=None)


@dataclass
class Collected:
    """What one import created: every DAG in order, and every task (mapped or not)."""

    dags: list[DAG] = field(default_factory=list)
    tasks: list[Any] = field(default_factory=list)

    @property
    def orphan_tasks(self) -> list[Any]:
        """Tasks that still belong to no DAG; each has ``definition_file``/``definition_lineno``."""
        return [task for task in self.tasks if task.dag is None]

    def orphan_errors(self) -> list[str]:
        """One "file:line: ..." message per task in no DAG, for the processor's import errors."""
        return [
            f"{task.definition_file}:{task.definition_lineno}: task {task.task_id!r} belongs to "
            "no DAG: create it inside `with DAG(...)`, pass dag=..., or connect it to a task "
            "that has one"
            for task in self.orphan_tasks
        ]


@contextmanager
def collect_definitions() -> Iterator[Collected]:
    collected = Collected()
    token = _active.set(collected)
    try:
        yield collected
    finally:
        _active.reset(token)


def record_dag(dag: DAG) -> None:
    collected = _active.get()
    if collected is not None:
        collected.dags.append(dag)


def record_task(task: Any) -> None:
    collected = _active.get()
    if collected is not None:
        collected.tasks.append(task)
