"""TaskFlow: ``@task`` turns a function into a task; calling it adds the task to the DAG.

The call returns an XComArg: pass it to another task and the value flows as an XCom, with the
dependency set for you. Calling the same function twice gives task_ids ``name``, ``name__1``,
``name__2``. Parameters named like context keys (``ti``, ``ds``, ``params``, ``logical_date``,
``dag_run``, ...) or a ``**context`` parameter receive the run's context.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from flow.authoring import context as dag_context
from flow.authoring.branching import follow_branches
from flow.authoring.location import user_location
from flow.authoring.mappedoperator import MappedOperator, OperatorPartial
from flow.authoring.taskgroup import _unique_id
from flow.authoring.xcom_arg import XComArg
from flow.builtin.operators.python import PythonOperator, ShortCircuitOperator
from flow.exceptions import DagDefinitionError


class DecoratedPythonOperator(PythonOperator):
    """The operator behind ``@task``."""

    custom_operator_name = "@task"

    def __init__(self, *, show_return_value_in_logs: bool = True, **kwargs: Any) -> None:
        super().__init__(show_return_value_in_logs=show_return_value_in_logs, **kwargs)


class DecoratedBranchOperator(DecoratedPythonOperator):
    """The operator behind ``@task.branch``."""

    custom_operator_name = "@task.branch"

    def execute(self, context: dict[str, Any]) -> Any:
        chosen = super().execute(context)
        follow_branches(self, context, chosen)
        return chosen


class DecoratedShortCircuitOperator(ShortCircuitOperator):
    """The operator behind ``@task.short_circuit``."""

    custom_operator_name = "@task.short_circuit"


def _returns_dict(function: Callable[..., Any]) -> bool:
    """Whether the return annotation is a dict (also as a string, without evaluating it)."""
    annotation = inspect.signature(function).return_annotation
    if isinstance(annotation, str):
        return annotation.replace("typing.", "").split("[", 1)[0].strip() in ("dict", "Dict")
    return annotation is dict or typing.get_origin(annotation) is dict


class TaskDecorator:
    """A function wrapped by ``@task``: call it, ``.override()`` it, or ``.expand()`` it."""

    def __init__(self, function: Callable[..., Any], operator_class: type,
                 kwargs: dict[str, Any]) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@task needs a function, got {function!r}",
                                     *user_location(1))
        self.function = function
        self.operator_class = operator_class
        self.kwargs = kwargs
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    @property
    def multiple_outputs(self) -> bool:
        value = self.kwargs.get("multiple_outputs")
        return _returns_dict(self.function) if value is None else bool(value)

    def _operator_kwargs(self) -> dict[str, Any]:
        kwargs = {k: v for k, v in self.kwargs.items() if k != "multiple_outputs"}
        kwargs["multiple_outputs"] = self.multiple_outputs
        kwargs["python_callable"] = self.function
        if "doc_md" not in kwargs and self.function.__doc__:
            kwargs["doc_md"] = inspect.cleandoc(self.function.__doc__)
        kwargs["task_id"] = self._unique_label(kwargs.get("task_id") or self.function.__name__,
                                               kwargs)
        return kwargs

    def _unique_label(self, label: str, kwargs: dict[str, Any]) -> str:
        group = kwargs.get("task_group")
        dag = kwargs.get("dag") or (group.dag if group is not None else None)
        dag = dag or dag_context.current_dag()
        if dag is None:
            return label
        group = group or dag_context.current_task_group(dag)
        def full(name: str) -> str:
            return group.child_id(name) if group is not None else name

        used = set(dag.task_dict) | dag.task_group.used_group_ids
        if full(label) not in used:
            return label
        core = re.split(r"__\d+$", label)[0]
        return core + _unique_id(full(core), used)[len(full(core)):]

    def _check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.signature.bind_partial(*args, **kwargs)
        except TypeError as err:
            raise DagDefinitionError(f"@task {self.function.__name__}: {err}",
                                     *user_location(1)) from None

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        self._check_arguments(args, kwargs)
        operator = self.operator_class(op_args=list(args), op_kwargs=kwargs,
                                       **self._operator_kwargs())
        return XComArg(operator)

    def override(self, **kwargs: Any) -> TaskDecorator:
        """The same function with other task arguments: ``extract.override(task_id="x")()``."""
        return TaskDecorator(self.function, self.operator_class, {**self.kwargs, **kwargs})

    def partial(self, **kwargs: Any) -> _TaskPartial:
        self._check_arguments((), kwargs)
        return _TaskPartial(self, kwargs, user_location(1))

    def expand(self, **kwargs: Any) -> XComArg:
        return _TaskPartial(self, {}, user_location(1)).expand(**kwargs)


class _TaskPartial:
    def __init__(self, decorator: TaskDecorator, fixed: dict[str, Any],
                 location: tuple[str, int]) -> None:
        self.decorator = decorator
        self.fixed = fixed
        self.location = location

    def expand(self, **mapped: Any) -> XComArg:
        decorator = self.decorator
        decorator._check_arguments((), {**self.fixed, **mapped})
        operator_kwargs = {**decorator._operator_kwargs(), "op_kwargs": dict(self.fixed)}
        accepted = frozenset(name for name, p in decorator.signature.parameters.items()
                             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        partial = OperatorPartial(decorator.operator_class, operator_kwargs, self.location,
                                  expand_into="op_kwargs", accepted=accepted)
        operator: MappedOperator = partial.expand(**mapped)
        return XComArg(operator)


class _TaskFactory:
    """``task``: ``@task``, ``@task(retries=2)``, ``@task.branch``, ``@task.short_circuit``."""

    def _decorate(self, operator_class: type, python_callable: Callable[..., Any] | None,
                  kwargs: dict[str, Any]) -> Any:
        if python_callable is not None:
            return TaskDecorator(python_callable, operator_class, kwargs)
        return lambda function: TaskDecorator(function, operator_class, kwargs)

    def __call__(self, python_callable: Callable[..., Any] | None = None,
                 **kwargs: Any) -> Any:
        return self._decorate(DecoratedPythonOperator, python_callable, kwargs)

    def python(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        return self._decorate(DecoratedPythonOperator, python_callable, kwargs)

    def branch(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """The function returns the task_id(s) or task group id(s) to follow."""
        return self._decorate(DecoratedBranchOperator, python_callable, kwargs)

    def short_circuit(self, python_callable: Callable[..., Any] | None = None,
                      **kwargs: Any) -> Any:
        """A falsy return value skips the tasks downstream."""
        return self._decorate(DecoratedShortCircuitOperator, python_callable, kwargs)


task = _TaskFactory()

__all__ = ["DecoratedPythonOperator", "TaskDecorator", "task"]
