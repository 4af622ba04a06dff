"""``>>``, ``<<``, ``chain`` and ``cross_downstream``: one mixin for tasks, groups and XComArgs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from flow.authoring.location import user_location


class DependencyMixin:
    """Anything that can stand on either side of ``>>``: it has roots and leaves (tasks)."""

    @property
    def roots(self) -> list[Any]:
        raise NotImplementedError

    @property
    def leaves(self) -> list[Any]:
        raise NotImplementedError

    def set_downstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        connect(self, other, user_location(2))

    def set_upstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        connect(other, self, user_location(2))

    def __rshift__(self, other: Any) -> Any:
        connect(self, other, user_location(2))
        return other

    def __lshift__(self, other: Any) -> Any:
        connect(other, self, user_location(2))
        return other

    def __rrshift__(self, other: Any) -> Any:
        # [a, b] >> self
        connect(other, self, user_location(2))
        return self

    def __rlshift__(self, other: Any) -> Any:
        # [a, b] << self
        connect(self, other, user_location(2))
        return self


def _items(side: Any) -> list[DependencyMixin]:
    if isinstance(side, DependencyMixin):
        return [side]
    if isinstance(side, (list, tuple, set, frozenset)):
        items = list(side)
        for item in items:
            if not isinstance(item, DependencyMixin):
                raise TypeError(f"cannot set a dependency on {item!r}: expected a task, a task "
                                "group, an XComArg or a list of them")
        return items
    raise TypeError(f"cannot set a dependency on {side!r}: expected a task, a task group, "
                    "an XComArg or a list of them")


def connect(upstream: Any, downstream: Any, location: tuple[str, int]) -> None:
    """Make every leaf of ``upstream`` an upstream of every root of ``downstream``."""
    leaves = [leaf for item in _items(upstream) for leaf in item.leaves]
    roots = [root for item in _items(downstream) for root in item.roots]
    for leaf in leaves:
        for root in roots:
            leaf._add_downstream(root, location)


def chain(*elements: Any) -> None:
    """``chain(a, [b, c], d)``: a >> [b, c] >> d. Two adjacent lists are paired element-wise."""
    location = user_location(2)
    for up, down in itertools.pairwise(elements):
        if isinstance(up, Sequence) and isinstance(down, Sequence):
            if len(up) != len(down):
                raise ValueError(f"chain() pairs adjacent lists element-wise; they must have "
                                 f"the same length, got {len(up)} and {len(down)}")
            for a, b in zip(up, down, strict=True):
                connect(a, b, location)
        else:
            connect(up, down, location)


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    location = user_location(2)
    for task in from_tasks:
        connect(task, to_tasks, location)
