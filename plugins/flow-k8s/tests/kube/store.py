"""The objects the server holds, one resourceVersion counter for every change, and a bounded
history of changes that watches replay from."""

from __future__ import annotations

import bisect
import copy
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .meta import Obj, expired

Key = tuple[str, str, str]  # resource (plural), namespace ("" for cluster scope), name


@dataclass(frozen=True)
class Change:
    resource_version: int
    resource: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    previous: Obj | None  # the object before a MODIFIED, so selectors can tell enter/leave


Listener = Callable[["Store", Change], None]


class Store:
    def __init__(self, history: int = 20000) -> None:
        self.changed = threading.Condition(threading.RLock())
        self._objects: dict[Key, Obj] = {}
        self._history: deque[Change] = deque(maxlen=history)
        self._resource_version = 1
        # Watches may start from any resourceVersion >= this one; older ones get 410 Gone.
        self._oldest_watchable = 1
        self._listeners: list[Listener] = []
        self._closed = False
        # Bumped by compact(): open watches end, as when a real API server restarts, so that
        # their clients come back with an old resourceVersion and meet the 410.
        self.epoch = 0

    # -- reading ----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def get(self, key: Key) -> Obj | None:
        with self.changed:
            obj = self._objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, resource: str, namespace: str | None = None) -> list[Obj]:
        with self.changed:
            return [copy.deepcopy(obj) for (kind, ns, _), obj in sorted(self._objects.items())
                    if kind == resource and (namespace is None or ns == namespace)]

    def changes_after(self, resource_version: int) -> tuple[list[Change], int]:
        """Changes after `resource_version`, and the resourceVersion they bring a watch up to;
        410 when history no longer reaches back to it."""
        with self.changed:
            self.check_not_expired(resource_version)
            start = bisect.bisect_right(self._history, resource_version,
                                        key=lambda change: change.resource_version)
            return [self._history[i] for i in range(start, len(self._history))], \
                self._resource_version

    def check_not_expired(self, resource_version: int) -> None:
        with self.changed:
            if resource_version < self._oldest_watchable - 1:
                raise expired(f"too old resource version: {resource_version} "
                              f"({self._oldest_watchable - 1})")

    # -- writing ----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def put(self, resource: str, obj: Obj, *, created: bool) -> Obj:
        """Stores `obj` under the next resourceVersion and records the change."""
        with self.changed:
            meta = obj["metadata"]
            key = (resource, meta.get("namespace", ""), meta["name"])
            previous = self._objects.get(key)
            self._resource_version += 1
            meta["resourceVersion"] = str(self._resource_version)
            self._objects[key] = copy.deepcopy(obj)
            self._record(Change(self._resource_version, resource,
                                "ADDED" if created else "MODIFIED", copy.deepcopy(obj),
                                copy.deepcopy(previous)))
            return obj

    def remove(self, resource: str, key: Key) -> Obj:
        with self.changed:
            obj = self._objects.pop(key)
            self._resource_version += 1
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
            self._record(Change(self._resource_version, resource, "DELETED",
                                copy.deepcopy(obj), None))
            return obj

    def _record(self, change: Change) -> None:
        self._history.append(change)
        if len(self._history) == self._history.maxlen:
            self._oldest_watchable = self._history[0].resource_version
        self.changed.notify_all()
        for listener in self._listeners:
            listener(self, change)

    def compact(self) -> None:
        """Forgets all history: a watch or list from any earlier resourceVersion gets 410."""
        with self.changed:
            self._history.clear()
            self._resource_version += 1
            self._oldest_watchable = self._resource_version + 1
            self.epoch += 1
            self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self._closed = True
            self.changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, seen: int, epoch: int, timeout: float) -> None:
        """Blocks until a change after `seen`, a compaction, or `timeout`."""
        with self.changed:
            if self._resource_version == seen and self.epoch == epoch and not self._closed:
                self.changed.wait(timeout)

    def keys(self) -> Iterator[Key]:
        with self.changed:
            yield from list(self._objects)
