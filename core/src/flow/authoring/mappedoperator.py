"""Dynamic task mapping: one task definition, one task instance per element at run time.

``Op.partial(task_id="t", common=1).expand(x=[1, 2, 3])`` maps over a literal; ``expand(x=
upstream.output)`` over what an upstream task returned. Several expanded arguments give their
cross product; map_index ``i`` picks combination ``i`` of ``itertools.product`` over the
arguments in the order they were given (the last one varies fastest). A dict expands to its
``(key, value)`` items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flow.authoring import context as dag_context
from flow.authoring.abstractoperator import (
    SCHEDULING_DEFAULTS,
    AbstractOperator,
    normalize_scheduling,
    validate_key,
)
from flow.authoring.collector import record_task
from flow.authoring.params import ParamsDict
from flow.authoring.xcom_arg import XComArg, iter_xcom_args
from flow.exceptions import DagDefinitionError

Resolve = Callable[[XComArg], Any]
_NOT_PARTIAL = {"dag", "task_group", "default_args"}


class OperatorPartial:
    """The fixed arguments of a mapped task, waiting for ``.expand(...)``."""

    def __init__(self, operator_class: type, kwargs: dict[str, Any], location: tuple[str, int],
                 expand_into: str | None = None, accepted: frozenset[str] | None = None) -> None:
        if "task_id" not in kwargs:
            raise DagDefinitionError(f"{operator_class.__name__}.partial() needs task_id=",
                                     *location)
        self.operator_class = operator_class
        self.kwargs = kwargs
        self.location = location
        self.expand_into = expand_into
        self.accepted = accepted

    def expand(self, **expand_input: Any) -> MappedOperator:
        return MappedOperator(self.operator_class, self.kwargs, expand_input, self.location,
                              expand_into=self.expand_into, accepted=self.accepted)


class MappedOperator(AbstractOperator):
    """A task that becomes ``get_map_lengths()`` task instances when it runs."""

    is_mapped = True

    def __init__(self, operator_class: type, partial_kwargs: dict[str, Any],
                 expand_input: dict[str, Any], location: tuple[str, int],
                 expand_into: str | None = None, accepted: frozenset[str] | None = None) -> None:
        from flow.authoring.baseoperator import _accepted_params, resolve_defaults

        self.definition_file, self.definition_lineno = location
        self.operator_class = operator_class
        self.expand_into = expand_into
        kwargs = resolve_defaults(operator_class, partial_kwargs)
        dag, group = kwargs.get("dag"), kwargs.get("task_group")
        label = kwargs["task_id"]
        validate_key("task_id", label, location)
        self.task_id = group.child_id(label) if group is not None else label
        _check_expand_input(self.task_id, operator_class, expand_input, kwargs, location,
                            accepted if accepted is not None else _accepted_params(operator_class),
                            expand_into)
        self.partial_kwargs = {k: v for k, v in kwargs.items()
                               if k not in _NOT_PARTIAL and k != "task_id"}
        self.expand_input = dict(expand_input)
        self.template_fields = tuple(operator_class.template_fields)  # type: ignore[attr-defined]
        self.template_ext = tuple(operator_class.template_ext)  # type: ignore[attr-defined]
        self._dag = None
        self.task_group = None
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self._edge_locations = {}
        self.params = ParamsDict(self.partial_kwargs.get("params"))
        scheduling = {k: v for k, v in self.partial_kwargs.items() if k in SCHEDULING_DEFAULTS}
        self.__dict__.update(normalize_scheduling(self.task_id, scheduling, location))
        if group is not None:
            self.task_group = group
        if dag is not None:
            self.dag = dag
        for value in (*self.expand_input.values(), *self.partial_kwargs.values()):
            for arg in iter_xcom_args(value):
                arg.operator._add_downstream(self, location)
        record_task(self)

    @property
    def task_type(self) -> str:
        return self.operator_class.__name__

    def _resolved_values(self, resolve: Resolve) -> list[tuple[str, list[Any]]]:
        values = []
        for name, value in self.expand_input.items():
            if isinstance(value, XComArg):
                value = resolve(value)
            if isinstance(value, Mapping):
                value = list(value.items())
            elif isinstance(value, (list, tuple)):
                value = list(value)
            else:
                raise TypeError(
                    f"task {self.task_id!r} expands {name!r} over {value!r}, which is not a list "
                    "or a dict: the upstream task must return one")
            values.append((name, value))
        return values

    def get_map_lengths(self, resolve: Resolve) -> int:
        """How many task instances this task becomes: the product of the expanded lengths."""
        return math.prod(len(value) for _, value in self._resolved_values(resolve))

    def unmap(self, map_index: int, resolve: Resolve) -> Any:
        """The concrete task for ``map_index``, ready to render and run."""
        values = self._resolved_values(resolve)
        total = math.prod(len(value) for _, value in values)
        if not 0 <= map_index < total:
            raise IndexError(f"task {self.task_id!r} has {total} mapped instances; "
                             f"map_index {map_index} is out of range")
        chosen: dict[str, Any] = {}
        remainder = map_index
        for name, value in reversed(values):
            remainder, index = divmod(remainder, len(value))
            chosen[name] = value[index]
        chosen = {name: chosen[name] for name, _ in values}
        kwargs = dict(self.partial_kwargs)
        if self.expand_into:
            kwargs[self.expand_into] = {**kwargs.get(self.expand_into, {}), **chosen}
        else:
            kwargs.update(chosen)
        with dag_context.detached():
            task = self.operator_class(task_id=self.task_id, **kwargs)
        task._dag = self._dag
        task.task_group = self.task_group
        task.upstream_task_ids = set(self.upstream_task_ids)
        task.downstream_task_ids = set(self.downstream_task_ids)
        task.params = self.params
        task.start_date = self.start_date
        task.definition_file, task.definition_lineno = (self.definition_file,
                                                        self.definition_lineno)
        task.map_index = map_index
        return task


def _check_expand_input(task_id: str, operator_class: type, expand_input: dict[str, Any],
                        partial: dict[str, Any], location: tuple[str, int],
                        accepted: frozenset[str], expand_into: str | None) -> None:
    if not expand_input:
        raise DagDefinitionError(f"task {task_id!r}: expand() needs at least one argument",
                                 *location)
    fixed = partial.get(expand_into, {}) if expand_into else partial
    for name, value in expand_input.items():
        if name not in accepted:
            raise DagDefinitionError(
                f"task {task_id!r}: {operator_class.__name__} has no argument {name!r} to "
                "expand over", *location)
        if name in fixed:
            raise DagDefinitionError(
                f"task {task_id!r}: {name!r} is given to both partial() and expand()", *location)
        if not isinstance(value, (list, tuple, dict, XComArg)):
            raise DagDefinitionError(
                f"task {task_id!r}: expand({name}=...) needs a list, a dict or an upstream "
                f"task's output, got {type(value).__name__}", *location)
