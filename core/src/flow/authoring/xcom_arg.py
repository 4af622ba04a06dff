"""References to values known only at run time: an upstream task's XCom, a DAG param.

Passing one as an operator argument (or to a ``@task`` function) makes the producing task an
upstream; the value is resolved when the consuming task's template fields are rendered.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flow.authoring.dependencies import DependencyMixin

RETURN_VALUE = "return_value"


class ResolvableArg:
    """A value to fetch from the run's context when the task runs."""

    def resolve(self, context: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class XComArg(ResolvableArg, DependencyMixin):
    """The XCom ``key`` that ``operator`` pushes (its return value by default)."""

    __slots__ = ("key", "operator")

    def __init__(self, operator: Any, key: str = RETURN_VALUE) -> None:
        self.operator = operator
        self.key = key

    @property
    def roots(self) -> list[Any]:
        return [self.operator]

    @property
    def leaves(self) -> list[Any]:
        return [self.operator]

    def __getitem__(self, key: str) -> XComArg:
        """``result["total"]``: one key of a task with ``multiple_outputs``."""
        return XComArg(self.operator, key)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"the output of task {self.operator.task_id!r} is only known when the "
                        "DAG runs: pass it to a task (or .expand() over it) instead of looping "
                        "over it in the DAG file")

    def resolve(self, context: Mapping[str, Any]) -> Any:
        return context["ti"].xcom_pull(task_ids=self.operator.task_id, key=self.key)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, XComArg) and other.operator is self.operator
                and other.key == self.key)

    def __hash__(self) -> int:
        return hash((id(self.operator), self.key))

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"


class DagParam(ResolvableArg):
    """A ``@dag`` function's parameter: the run's value of ``params[name]``."""

    __slots__ = ("default", "name")

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def resolve(self, context: Mapping[str, Any]) -> Any:
        params = context.get("params") or {}
        return params.get(self.name, self.default)

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"


def iter_xcom_args(value: Any) -> Iterator[XComArg]:
    """Every XComArg inside ``value`` (lists, tuples, sets and dict values, recursively)."""
    if isinstance(value, XComArg):
        yield value
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from iter_xcom_args(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_xcom_args(item)
