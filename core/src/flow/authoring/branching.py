"""Following branches: what BranchPythonOperator and ``@task.branch`` do with their result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flow.exceptions import FlowException


class InvalidBranchError(FlowException, ValueError):
    """A branch callable chose a task that is not a direct downstream of the branching task."""


def _as_ids(task_id: str, chosen: Any) -> list[str]:
    if chosen is None:
        return []
    if isinstance(chosen, str):
        return [chosen]
    if isinstance(chosen, Iterable) and all(isinstance(item, str) for item in chosen):
        return list(chosen)
    raise InvalidBranchError(f"task {task_id!r}: a branch callable must return a task_id, a "
                             f"list of task_ids or None, got {chosen!r}")


def expand_branches(task: Any, chosen: Any) -> list[str]:
    """Task ids to follow: group ids become the group's root tasks; each must be downstream."""
    ids = _as_ids(task.task_id, chosen)
    dag = task.dag
    groups = dag.task_group.get_task_group_dict() if dag is not None else {}
    expanded: list[str] = []
    for task_id in ids:
        group = groups.get(task_id) if task_id else None
        if group is not None and task_id not in (dag.task_dict if dag else {}):
            expanded.extend(root.task_id for root in group.roots)
        else:
            expanded.append(task_id)
    wrong = [task_id for task_id in expanded if task_id not in task.downstream_task_ids]
    if wrong:
        raise InvalidBranchError(
            f"task {task.task_id!r} chose {', '.join(map(repr, wrong))}, which is not directly "
            f"downstream of it; its direct downstream tasks are: "
            f"{', '.join(sorted(task.downstream_task_ids)) or '(none)'}")
    return list(dict.fromkeys(expanded))


def follow_branches(task: Any, context: Mapping[str, Any], chosen: Any) -> list[str]:
    """Tell the task instance which branches to follow; the others are skipped."""
    task_ids = expand_branches(task, chosen)
    task.log.info("Following branch(es) %s", task_ids)
    context["ti"].follow_branches(task_ids, skip_all_downstream=False)
    return task_ids
