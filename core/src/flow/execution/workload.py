"""The messages between the scheduler, executors and task runners: small JSON documents.

One workload format for every executor: ``flow tasks run --workload JSON`` is the single entry
point that a local worker, a Celery worker or a Kubernetes pod calls. No pickle: a workload is
plain JSON, validated field by field when read, so a malformed message fails with the field's
name instead of running the wrong task.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class WorkloadError(ValueError):
    """A workload or event document is malformed; the message names the field."""


@dataclass(frozen=True, order=True)
class TaskKey:
    """Identifies one task instance (one map index of one task in one DAG run)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def __str__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TaskKey:
        return cls(**_checked(cls, data))


@dataclass(frozen=True)
class TaskWorkload:
    """One try of one task instance to run: what an executor receives."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    dag_file: str
    map_index: int = -1
    dag_hash: str | None = None
    queue: str = "default"
    pool: str = "default_pool"

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.dag_id, self.run_id, self.task_id, self.map_index)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TaskWorkload:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise WorkloadError(f"workload is not JSON: {err}") from None
        return cls(**_checked(cls, data))


@dataclass(frozen=True)
class TaskEvent:
    """What happened to a workload: ``state`` is a task instance state (``running``,
    ``success``, ``failed``, ``up_for_retry``, ``skipped``), ``refused`` when the runner did not
    start the try (a late or duplicate start), or ``lost`` when the executor cannot tell (the
    worker died). ``info`` holds details such as an exit code or an error message."""

    key: TaskKey
    state: str
    try_number: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"key": self.key.to_dict(), "state": self.state,
                           "try_number": self.try_number, "info": self.info}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TaskEvent:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise WorkloadError(f"task event is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise WorkloadError("task event must be a JSON object")
        info = data.get("info") or {}
        if not isinstance(info, dict):
            raise WorkloadError("task event field 'info' must be an object")
        state, try_number = data.get("state"), data.get("try_number")
        if not isinstance(state, str) or not isinstance(try_number, int):
            raise WorkloadError("task event needs 'state' (string) and 'try_number' (integer)")
        return cls(TaskKey.from_dict(data.get("key")), state, try_number, info)


def _checked(cls: type, data: Any) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``, each field of the declared type."""
    if not isinstance(data, dict):
        raise WorkloadError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise WorkloadError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    for name, spec in known.items():
        if name not in data:
            if spec.default is spec.default_factory:  # both MISSING: a required field
                raise WorkloadError(f"{cls.__name__} needs field {name!r}")
            continue
        value = data[name]
        expected = str(spec.type)
        if "int" in expected and (not isinstance(value, int) or isinstance(value, bool)):
            raise WorkloadError(f"{cls.__name__} field {name!r} must be an integer, got {value!r}")
        if "str" in expected and not isinstance(value, str) and not (
                value is None and "None" in expected):
            raise WorkloadError(f"{cls.__name__} field {name!r} must be a string, got {value!r}")
    return dict(data)
