"""Task groups: a named set of tasks shown together; task_ids are prefixed ``group.task``.

``group >> task`` connects the group's leaves (tasks with no downstream inside the group);
``task >> group`` connects its roots (tasks with no upstream inside it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flow.authoring import context as dag_context
from flow.authoring.abstractoperator import validate_key
from flow.authoring.dependencies import DependencyMixin
from flow.authoring.location import user_location
from flow.exceptions import DagDefinitionError, DuplicateTaskIdError

if TYPE_CHECKING:
    from flow.authoring.dag import DAG


class TaskGroup(DependencyMixin):
    """``with TaskGroup("extract") as extract: ...``; the DAG's root group has group_id None."""

    def __init__(
        self,
        group_id: str | None,
        *,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: Mapping[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        add_suffix_on_collision: bool = False,
        _root: bool = False,
    ) -> None:
        self.definition_file, self.definition_lineno = location = user_location(1)
        self.prefix_group_id = prefix_group_id
        self.default_args = dict(default_args or {})
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.children: dict[str, Any] = {}
        self.used_group_ids: set[str] = set()
        if _root:
            self.group_id: str | None = None
            self.parent_group: TaskGroup | None = None
            self.dag = dag
            return
        dag = dag or (parent_group.dag if parent_group else None) or dag_context.current_dag()
        if dag is None:
            raise DagDefinitionError(
                f"TaskGroup {group_id!r} is outside any DAG: create it inside `with DAG(...)` "
                "or pass dag=...", *location)
        validate_key("group_id", group_id, location)
        self.dag = dag
        parent = parent_group or dag_context.current_task_group(dag)
        assert parent is not None
        self.parent_group = parent
        full_id = parent.child_id(group_id)  # type: ignore[arg-type]
        if full_id in dag.task_group.used_group_ids or full_id in dag.task_dict:
            if not add_suffix_on_collision:
                raise DuplicateTaskIdError(
                    f"group_id {full_id!r} is already used in DAG {dag.dag_id!r}", *location)
            full_id = _unique_id(full_id, dag.task_group.used_group_ids | set(dag.task_dict))
        self.group_id = full_id
        dag.task_group.used_group_ids.add(full_id)
        parent.add(self)

    @classmethod
    def create_root(cls, dag: DAG) -> TaskGroup:
        return cls(None, dag=dag, _root=True)

    @property
    def is_root(self) -> bool:
        return self.group_id is None

    @property
    def label(self) -> str | None:
        if self.group_id and self.parent_group and self.parent_group.group_id \
                and self.group_id.startswith(self.parent_group.group_id + "."):
            return self.group_id[len(self.parent_group.group_id) + 1:]
        return self.group_id

    def child_id(self, label: str) -> str:
        if self.group_id and self.prefix_group_id:
            return f"{self.group_id}.{label}"
        if self.parent_group is not None:  # a group without prefix inherits its parent's
            return self.parent_group.child_id(label)
        return label

    def add(self, child: Any) -> None:
        key: str = child.group_id if isinstance(child, TaskGroup) else child.task_id  # type: ignore[assignment]
        if key in self.children and self.children[key] is not child:
            raise DuplicateTaskIdError(f"{key!r} is already used in DAG {self.dag_id!r}",
                                       child.definition_file, child.definition_lineno)
        self.children[key] = child

    @property
    def dag_id(self) -> str | None:
        return self.dag.dag_id if self.dag is not None else None

    def merged_default_args(self) -> dict[str, Any]:
        """default_args of the enclosing groups, inner groups winning."""
        merged = self.parent_group.merged_default_args() if self.parent_group else {}
        merged.update(self.default_args)
        return merged

    def iter_tasks(self) -> Iterator[Any]:
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child.iter_tasks()
            else:
                yield child

    def iter_groups(self) -> Iterator[TaskGroup]:
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield child
                yield from child.iter_groups()

    def get_task_group_dict(self) -> dict[str | None, TaskGroup]:
        return {self.group_id: self, **{g.group_id: g for g in self.iter_groups()}}

    @property
    def roots(self) -> list[Any]:
        tasks = list(self.iter_tasks())
        ids = {task.task_id for task in tasks}
        return [task for task in tasks if not task.upstream_task_ids & ids]

    @property
    def leaves(self) -> list[Any]:
        tasks = list(self.iter_tasks())
        ids = {task.task_id for task in tasks}
        return [task for task in tasks if not task.downstream_task_ids & ids]

    def __enter__(self) -> TaskGroup:
        dag_context.push_group(self)
        return self

    def __exit__(self, *exc: object) -> None:
        dag_context.pop_group()

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id!r}>"


def _unique_id(base: str, used: set[str]) -> str:
    core = re.split(r"__\d+$", base)[0]
    numbers = [int(m.group(1)) for used_id in used
               if (m := re.fullmatch(re.escape(core) + r"__(\d+)", used_id))]
    return f"{core}__{max(numbers, default=0) + 1}"


class _TaskGroupFactory:
    def __init__(self, function: Callable[..., Any], group_kwargs: dict[str, Any]) -> None:
        self.function = function
        self.group_kwargs = group_kwargs
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        group_kwargs = {"add_suffix_on_collision": True, **self.group_kwargs}
        group_id = group_kwargs.pop("group_id", None) or self.function.__name__
        if "tooltip" not in group_kwargs and self.function.__doc__:
            group_kwargs["tooltip"] = self.function.__doc__.strip()
        with TaskGroup(group_id, **group_kwargs) as group:
            result = self.function(*args, **kwargs)
        # A returned task or XComArg is what `>>` should bind to, as in Airflow.
        return result if result is not None else group

    def override(self, **kwargs: Any) -> _TaskGroupFactory:
        return _TaskGroupFactory(self.function, {**self.group_kwargs, **kwargs})


def task_group(python_callable: Callable[..., Any] | None = None, **group_kwargs: Any) -> Any:
    """``@task_group`` / ``@task_group(group_id=..., default_args=...)``: calling the function
    creates a TaskGroup (suffixed ``__1``, ``__2`` when called again) holding what it creates."""
    if python_callable is not None:
        return _TaskGroupFactory(python_callable, group_kwargs)
    return lambda function: _TaskGroupFactory(function, group_kwargs)
