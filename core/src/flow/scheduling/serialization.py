"""The JSON form of a DAG: what the DAG processor stores and the scheduler and web server read.

``serialize_dag`` runs where user code is imported (the DAG processor); ``SerializedDag`` is a
read-only structure restored from the JSON that never imports user code: operators become
their recorded attributes, the timetable is rebuilt through the plugin facade
(``flow.plugins.current().timetables()``). ``dag_hash`` of the JSON is the DAG's version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SERIALIZATION_VERSION = 1

# Scheduling attributes copied as they are (JSON scalars); timedeltas are stored as seconds.
_TASK_SCALARS = ("owner", "retries", "retry_exponential_backoff", "depends_on_past", "pool",
                 "pool_slots", "priority_weight", "queue", "executor", "doc_md", "do_xcom_push",
                 "multiple_outputs", "definition_file", "definition_lineno")
_TASK_DURATIONS = ("retry_delay", "max_retry_delay", "execution_timeout")


class SerializationFailed(ValueError):
    """A DAG could not be turned into JSON; the message names the DAG, task and attribute."""


def serialize_dag(dag: Any) -> dict[str, Any]:
    """The JSON-compatible dict of ``dag`` (see the module docstring)."""
    timetable = dag.timetable
    data: dict[str, Any] = {
        "__version": SERIALIZATION_VERSION,
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "lineno": getattr(dag, "lineno", None),
        "description": getattr(dag, "description", None),
        "doc_md": getattr(dag, "doc_md", None),
        "owner": getattr(dag, "owner", None) or "",
        "tags": sorted(getattr(dag, "tags", None) or []),
        "timetable": {"type_name": type(timetable).type_name, "value": timetable.serialize()},
        "schedule_summary": getattr(timetable, "summary", ""),
        "start_date": _iso(getattr(dag, "start_date", None)),
        "end_date": _iso(getattr(dag, "end_date", None)),
        "catchup": bool(getattr(dag, "catchup", False)),
        "max_active_runs": getattr(dag, "max_active_runs", None),
        "max_active_tasks": getattr(dag, "max_active_tasks", None),
        "dagrun_timeout": _seconds(getattr(dag, "dagrun_timeout", None)),
        "timezone": str(getattr(dag, "timezone", "UTC")),
        "is_paused_upon_creation": getattr(dag, "is_paused_upon_creation", None),
        "params": dag.params.dump() if getattr(dag, "params", None) is not None else {},
        "has_on_success_callback": bool(getattr(dag, "on_success_callback", None)),
        "has_on_failure_callback": bool(getattr(dag, "on_failure_callback", None)),
        "tasks": [serialize_task(task, dag.dag_id) for task in dag.topological_sort()],
        "task_group": _serialize_group(getattr(dag, "task_group", None)),
    }
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise SerializationFailed(f"DAG {dag.dag_id!r} cannot be stored as JSON: {err}") from err
    return data


def serialize_task(task: Any, dag_id: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_type": getattr(task, "task_type", type(task).__name__),
        "task_module": _operator_module(task),
        "is_mapped": bool(getattr(task, "is_mapped", False)),
        "trigger_rule": str(getattr(task, "trigger_rule", "all_success")),
        "upstream_task_ids": sorted(task.upstream_task_ids),
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "template_fields": list(getattr(task, "template_fields", ()) or ()),
        "template_ext": list(getattr(task, "template_ext", ()) or ()),
        "executor_config": _jsonable(getattr(task, "executor_config", None) or {}),
        "task_group_id": _group_id(getattr(task, "task_group", None)),
        "has_on_success_callback": bool(getattr(task, "on_success_callback", None)),
        "has_on_failure_callback": bool(getattr(task, "on_failure_callback", None)),
        "has_on_retry_callback": bool(getattr(task, "on_retry_callback", None)),
    }
    for name in _TASK_SCALARS:
        data[name] = _jsonable(getattr(task, name, None))
    for name in _TASK_DURATIONS:
        data[name] = _seconds(getattr(task, name, None))
    if data["is_mapped"]:
        data["expand_input"] = _serialize_expand_input(getattr(task, "expand_input", {}) or {})
    return data


def _operator_module(task: Any) -> str:
    cls = getattr(task, "operator_class", None) or type(task)
    return f"{cls.__module__}:{cls.__qualname__}"


def _serialize_expand_input(expand_input: dict[str, Any]) -> dict[str, Any]:
    from flow.authoring.xcom_arg import XComArg

    result: dict[str, Any] = {}
    for name, value in expand_input.items():
        if isinstance(value, XComArg):
            result[name] = {"xcom": {"task_id": value.operator.task_id, "key": value.key}}
        else:
            try:
                result[name] = {"length": len(value)}
            except TypeError:
                result[name] = {"length": None}
    return result


def _serialize_group(group: Any) -> dict[str, Any] | None:
    if group is None:
        return None
    children = getattr(group, "children", {}) or {}
    items = children.values() if isinstance(children, dict) else children
    tasks, groups = [], []
    for child in items:
        if hasattr(child, "task_id"):
            tasks.append(child.task_id)
        else:
            groups.append(_serialize_group(child))
    return {"group_id": _group_id(group), "tooltip": getattr(group, "tooltip", "") or "",
            "tasks": tasks, "groups": groups}


def _group_id(group: Any) -> str | None:
    return getattr(group, "group_id", None) if group is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _jsonable(value: Any) -> Any:
    """JSON scalars and containers as they are; anything else as its ``repr`` (display only)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def dag_hash(data: dict[str, Any]) -> str:
    """The version of a serialized DAG: SHA-256 of its canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ------------------------------------------------------------------------------ reading back


@dataclass(frozen=True)
class SerializedTask:
    """A task as the scheduler and web server see it: attributes only, no operator code."""

    task_id: str
    task_type: str
    trigger_rule: str
    upstream_task_ids: frozenset[str]
    downstream_task_ids: frozenset[str]
    is_mapped: bool
    data: dict[str, Any] = field(repr=False, compare=False)

    def __getattr__(self, name: str) -> Any:
        # Every other recorded attribute (retries, pool, queue, ...) reads from the JSON.
        data = self.__dict__.get("data") or {}
        if name in data:
            value = data[name]
            if name in _TASK_DURATIONS and value is not None:
                return timedelta(seconds=value)
            return value
        raise AttributeError(f"serialized task {self.__dict__.get('task_id')!r} has no "
                             f"attribute {name!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SerializedTask:
        return cls(data["task_id"], data.get("task_type", ""),
                   data.get("trigger_rule", "all_success"),
                   frozenset(data.get("upstream_task_ids", ())),
                   frozenset(data.get("downstream_task_ids", ())),
                   bool(data.get("is_mapped")), data)


@dataclass(frozen=True)
class SerializedDag:
    """A DAG restored from JSON, read-only; ``timetable`` is a real Timetable object."""

    dag_id: str
    fileloc: str
    timetable: Any
    task_dict: dict[str, SerializedTask]
    params: dict[str, Any]
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], plugins: Any = None) -> SerializedDag:
        version = data.get("__version")
        if version != SERIALIZATION_VERSION:
            raise SerializationFailed(f"serialized DAG {data.get('dag_id')!r} has version "
                                      f"{version!r}; this flow reads {SERIALIZATION_VERSION}: "
                                      "re-parse the DAG files")
        tasks = {t["task_id"]: SerializedTask.from_dict(t) for t in data.get("tasks", [])}
        return cls(data["dag_id"], data.get("fileloc", ""),
                   restore_timetable(data["timetable"], plugins), tasks,
                   data.get("params") or {}, data)

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data") or {}
        if name in data:
            return data[name]
        raise AttributeError(f"serialized DAG {self.__dict__.get('dag_id')!r} has no "
                             f"attribute {name!r}")

    @property
    def tasks(self) -> list[SerializedTask]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> SerializedTask:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise KeyError(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    def topological_sort(self) -> list[SerializedTask]:
        # Stored in topological order by serialize_dag.
        return self.tasks

    def leaves(self) -> Iterator[SerializedTask]:
        return (task for task in self.tasks if not task.downstream_task_ids)


def restore_timetable(data: dict[str, Any], plugins: Any = None) -> Any:
    """Rebuild a timetable from ``{"type_name", "value"}`` through the registered timetables."""
    if plugins is None:
        from flow.plugins import current

        plugins = current()
    type_name = data["type_name"]
    specs = plugins.timetables()
    if type_name not in specs:
        raise SerializationFailed(
            f"no timetable named {type_name!r} is registered (installed: "
            f"{', '.join(sorted(specs)) or 'none'}); install the plugin that provides it")
    return specs[type_name].load().deserialize(data["value"])
