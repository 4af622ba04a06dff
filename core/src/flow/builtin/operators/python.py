"""PythonOperator, BranchPythonOperator and ShortCircuitOperator."""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flow.authoring.baseoperator import BaseOperator
from flow.authoring.branching import follow_branches
from flow.authoring.location import user_location
from flow.exceptions import DagDefinitionError

# function -> its parameters (None: not introspectable), computed once per function. The local
# executor's worker fills it as it loads a DAG file (see callable_parameters), so a forked try
# finds its callable's parameters there instead of running inspect.signature again.
_PARAMETERS: weakref.WeakKeyDictionary[Any, Mapping[str, inspect.Parameter] | None] = \
    weakref.WeakKeyDictionary()


def callable_parameters(function: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """``function``'s parameters by name, or None when it has no introspectable signature (a
    builtin such as ``time.sleep``); remembered per function."""
    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weakly referenceable
        return _PARAMETERS[function]
    try:
        parameters: Mapping[str, inspect.Parameter] | None = \
            inspect.signature(function).parameters
    except (ValueError, TypeError):
        parameters = None
    with contextlib.suppress(TypeError):
        _PARAMETERS[function] = parameters
    return parameters


def context_kwargs(function: Callable[..., Any], context: Mapping[str, Any],
                   args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus the context entries ``function`` asks for by name (all with ``**``).

    A builtin without an introspectable signature (``time.sleep``) asks for none."""
    parameters = callable_parameters(function)
    if parameters is None:
        return dict(kwargs)
    positional = [p.name for p in parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    taken = set(positional[:len(args)]) | set(kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        wanted = {k: v for k, v in context.items() if k not in taken}
    else:
        wanted = {name: context[name] for name, p in parameters.items()
                  if name in context and name not in taken and p.kind is not p.POSITIONAL_ONLY}
    return {**wanted, **kwargs}


class PythonOperator(BaseOperator):
    """Call ``python_callable(*op_args, **op_kwargs)``; its return value is the XCom.

    Parameters named like context keys (``ti``, ``ds``, ``params``, ...) or a ``**context``
    parameter receive the task's context. ``op_args``, ``op_kwargs`` and ``templates_dict`` are
    rendered with Jinja first; ``templates_dict`` reaches the callable as
    ``context["templates_dict"]``.
    """

    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise DagDefinitionError(
                f"{type(self).__name__} {kwargs.get('task_id')!r}: python_callable must be "
                f"callable, got {python_callable!r}", *user_location(1))
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = dict(templates_dict) if templates_dict is not None else None
        if templates_exts:
            self.template_ext = tuple(templates_exts)
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context: dict[str, Any]) -> Any:
        context = {**context, "templates_dict": self.templates_dict}
        result = self.execute_callable(context)
        if self.show_return_value_in_logs:
            self.log.info("Done. Returned value was: %r", result)
        else:
            self.log.info("Done. Returned value not shown")
        return result

    def execute_callable(self, context: Mapping[str, Any]) -> Any:
        kwargs = context_kwargs(self.python_callable, context, self.op_args, self.op_kwargs)
        return self.python_callable(*self.op_args, **kwargs)


class BranchPythonOperator(PythonOperator):
    """Follow the task_id(s) (or task group ids) the callable returns; skip the other
    direct downstream tasks. Returning None follows no branch."""

    ui_color = "#ffefeb"

    def execute(self, context: dict[str, Any]) -> Any:
        chosen = super().execute(context)
        follow_branches(self, context, chosen)
        return chosen


class ShortCircuitOperator(PythonOperator):
    """Skip downstream tasks when the callable returns a falsy value.

    With ``ignore_downstream_trigger_rules=True`` (the default) every task downstream is
    skipped; with False only the direct downstream tasks are, and the tasks after them follow
    their trigger rules.
    """

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: dict[str, Any]) -> Any:
        condition = super().execute(context)
        if condition:
            self.log.info("Condition is truthy: downstream tasks proceed")
            return condition
        self.log.info("Condition is falsy: skipping %s downstream tasks",
                      "all" if self.ignore_downstream_trigger_rules else "the direct")
        context["ti"].follow_branches(
            [], skip_all_downstream=self.ignore_downstream_trigger_rules)
        return condition
