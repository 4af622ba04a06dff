"""What plain and mapped tasks share: identity, DAG membership, dependencies, retry policy."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flow.authoring.dependencies import DependencyMixin
from flow.authoring.params import ParamsDict
from flow.authoring.trigger_rule import TriggerRule
from flow.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from flow.authoring.dag import DAG
    from flow.authoring.taskgroup import TaskGroup
    from flow.authoring.xcom_arg import XComArg

# Each operator class's logger, looked up once per process (a lookup takes logging's lock).
_operator_logs: dict[type, logging.Logger] = {}

_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
MAX_KEY_LENGTH = 250
# A retry never waits longer than this unless max_retry_delay says otherwise.
MAX_RETRY_DELAY = timedelta(hours=24)


def backoff(delay: timedelta, exponential: bool, cap: timedelta | None,
            try_number: int) -> timedelta:
    """How long to wait after try ``try_number`` (1-based) failed: ``delay``, or with
    ``exponential`` ``delay`` doubled on each try, capped by ``cap`` (24 hours when None)."""
    if not exponential:
        return delay
    exponent = min(max(try_number - 1, 0), 40)  # 2**40 already exceeds any cap
    return min(timedelta(seconds=delay.total_seconds() * (2 ** exponent)),
               cap or MAX_RETRY_DELAY)

# The scheduling attributes of every task and their defaults; default_args may set any of them.
SCHEDULING_DEFAULTS: dict[str, Any] = {
    "owner": "flow",
    "email": None,
    "email_on_failure": True,
    "email_on_retry": True,
    "retries": 0,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "depends_on_past": False,
    "wait_for_downstream": False,
    "pool": "default_pool",
    "pool_slots": 1,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "queue": "default",
    "executor": None,
    "executor_config": None,
    "doc_md": None,
    "doc": None,
    "do_xcom_push": True,
    "multiple_outputs": False,
    "on_execute_callback": None,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "start_date": None,
    "end_date": None,
}
WEIGHT_RULES = ("downstream", "upstream", "absolute")


def validate_key(kind: str, key: Any, location: tuple[str, int]) -> None:
    """dag_id, task_id and group_id: letters, digits, ``-``, ``_`` and ``.``; 250 at most."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or len(key) > MAX_KEY_LENGTH:
        raise DagDefinitionError(
            f"{kind} {key!r} is invalid: use 1 to {MAX_KEY_LENGTH} letters, digits, "
            "dashes (-), underscores (_) and dots (.)", *location)


def _as_timedelta(name: str, value: Any, task_id: str, location: tuple[str, int],
                  optional: bool) -> timedelta | None:
    if value is None and optional:
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"task {task_id!r}: {name} must be a timedelta or a number of "
                             f"seconds, got {value!r}", *location)


def _as_callbacks(name: str, value: Any, task_id: str, location: tuple[str, int]) -> Any:
    callbacks = value if isinstance(value, (list, tuple)) else [value]
    for callback in callbacks:
        if callback is not None and not callable(callback):
            raise DagDefinitionError(f"task {task_id!r}: {name} must be a callable or a list of "
                                     f"callables, got {callback!r}", *location)
    return value


def normalize_scheduling(task_id: str, values: Mapping[str, Any],
                         location: tuple[str, int]) -> dict[str, Any]:
    """Check and convert the scheduling attributes; errors name the task, file and line."""
    result = {**SCHEDULING_DEFAULTS, **values}
    rule = result["trigger_rule"]
    if not TriggerRule.is_valid(rule):
        raise DagDefinitionError(
            f"task {task_id!r}: unknown trigger rule {rule!r}; use one of "
            f"{', '.join(sorted(TriggerRule.all_triggers()))}", *location)
    result["trigger_rule"] = TriggerRule(rule)
    try:
        result["retries"] = int(result["retries"] or 0)
        result["priority_weight"] = int(result["priority_weight"])
        result["pool_slots"] = int(result["pool_slots"])
    except (TypeError, ValueError) as err:
        raise DagDefinitionError(f"task {task_id!r}: {err}", *location) from None
    if result["retries"] < 0 or result["pool_slots"] < 1:
        raise DagDefinitionError(f"task {task_id!r}: retries must be >= 0 and pool_slots >= 1",
                                 *location)
    if result["weight_rule"] not in WEIGHT_RULES:
        raise DagDefinitionError(f"task {task_id!r}: weight_rule must be one of "
                                 f"{', '.join(WEIGHT_RULES)}", *location)
    result["retry_delay"] = _as_timedelta("retry_delay", result["retry_delay"], task_id,
                                          location, optional=False)
    for name in ("max_retry_delay", "execution_timeout"):
        result[name] = _as_timedelta(name, result[name], task_id, location, optional=True)
    for name in ("on_execute_callback", "on_success_callback", "on_failure_callback",
                 "on_retry_callback"):
        result[name] = _as_callbacks(name, result[name], task_id, location)
    result["executor_config"] = dict(result["executor_config"] or {})
    return result


class AbstractOperator(DependencyMixin):
    """Base of BaseOperator and MappedOperator."""

    is_mapped = False
    template_fields: tuple[str, ...] | list[str] = ()
    template_ext: tuple[str, ...] | list[str] = ()
    template_fields_renderers: dict[str, str] = {}
    ui_color = "#fff"

    task_id: str
    definition_file: str
    definition_lineno: int
    upstream_task_ids: set[str]
    downstream_task_ids: set[str]
    task_group: TaskGroup | None
    params: ParamsDict
    start_date: datetime | None
    end_date: datetime | None
    owner: str
    retries: int
    trigger_rule: TriggerRule
    execution_timeout: timedelta | None
    pool: str
    pool_slots: int
    priority_weight: int
    queue: str
    executor: str | None
    executor_config: dict[str, Any]
    depends_on_past: bool
    do_xcom_push: bool
    multiple_outputs: bool
    doc_md: str | None
    retry_delay: timedelta
    retry_exponential_backoff: bool
    max_retry_delay: timedelta | None
    _dag: DAG | None
    _edge_locations: dict[str, tuple[str, int]]

    # ---- DAG membership ---------------------------------------------------------------------
    @property
    def dag(self) -> DAG | None:
        return self._dag

    @dag.setter
    def dag(self, dag: DAG | None) -> None:
        if dag is self._dag:
            return
        if dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} cannot leave its DAG",
                                     self.definition_file, self.definition_lineno)
        if self._dag is not None:
            raise DagDefinitionError(
                f"task {self.task_id!r} already belongs to DAG {self._dag.dag_id!r}; it cannot "
                f"also join DAG {dag.dag_id!r}", self.definition_file, self.definition_lineno)
        dag.add_task(self)  # raises on a duplicate task_id before anything changes
        self._dag = dag
        self.params = dag.params.merged(self.params)
        if self.start_date is None:
            self.start_date = dag.start_date

    @property
    def dag_id(self) -> str | None:
        return self._dag.dag_id if self._dag is not None else None

    @property
    def task_type(self) -> str:
        return type(self).__name__

    @property
    def label(self) -> str:
        """The task_id without the prefixes of its task groups."""
        group = self.task_group
        if group is not None and group.group_id and group.prefix_group_id:
            prefix = group.group_id + "."
            if self.task_id.startswith(prefix):
                return self.task_id[len(prefix):]
        return self.task_id

    @property
    def log(self) -> logging.Logger:
        # under "flow.task", whose records the task runner writes to the task's log
        kind = type(self)
        logger = _operator_logs.get(kind)
        if logger is None:
            logger = _operator_logs[kind] = logging.getLogger(
                f"flow.task.operators.{kind.__name__}")
        return logger

    # ---- dependencies -----------------------------------------------------------------------
    @property
    def roots(self) -> list[Any]:
        return [self]

    @property
    def leaves(self) -> list[Any]:
        return [self]

    def _add_downstream(self, other: AbstractOperator, location: tuple[str, int]) -> None:
        if other is self:
            raise DagDefinitionError(f"task {self.task_id!r} cannot depend on itself", *location)
        mine, theirs = self._dag, other._dag
        if mine is not None and theirs is not None and mine is not theirs:
            raise DagDefinitionError(
                f"cannot set {self.task_id!r} >> {other.task_id!r}: the tasks belong to "
                f"different DAGs ({mine.dag_id!r} and {theirs.dag_id!r})", *location)
        if mine is None and theirs is not None:
            self.dag = theirs
        elif theirs is None and mine is not None:
            other.dag = mine
        self.downstream_task_ids.add(other.task_id)
        other.upstream_task_ids.add(self.task_id)
        self._edge_locations[other.task_id] = location

    def edge_location(self, downstream_task_id: str) -> tuple[str, int] | None:
        """Where ``self >> downstream`` was written, if it was."""
        return self._edge_locations.get(downstream_task_id)

    def _relatives(self, ids: set[str]) -> list[Any]:
        if self._dag is None:
            return []
        return [self._dag.task_dict[task_id] for task_id in sorted(ids)]

    @property
    def upstream_list(self) -> list[Any]:
        return self._relatives(self.upstream_task_ids)

    @property
    def downstream_list(self) -> list[Any]:
        return self._relatives(self.downstream_task_ids)

    def get_flat_relative_ids(self, upstream: bool = False) -> set[str]:
        """Every task reachable downstream (or upstream) of this one."""
        if self._dag is None:
            return set()
        found: set[str] = set()
        pending = list(self.upstream_task_ids if upstream else self.downstream_task_ids)
        while pending:
            task_id = pending.pop()
            if task_id in found:
                continue
            found.add(task_id)
            task = self._dag.task_dict[task_id]
            pending.extend(task.upstream_task_ids if upstream else task.downstream_task_ids)
        return found

    # ---- retries and results ----------------------------------------------------------------
    def get_retry_delay(self, try_number: int) -> timedelta:
        """How long to wait after try ``try_number`` (1-based) failed.

        With retry_exponential_backoff the delay doubles on each try: retry_delay, 2x, 4x, ...,
        capped by max_retry_delay (24 hours when unset).
        """
        return backoff(self.retry_delay, self.retry_exponential_backoff, self.max_retry_delay,
                       try_number)

    @property
    def output(self) -> XComArg:
        from flow.authoring.xcom_arg import XComArg

        return XComArg(self)

    def iter_callbacks(self, name: str) -> list[Callable[..., Any]]:
        """The callables of ``on_<name>_callback`` as a list (it may be one or a list)."""
        value = getattr(self, f"on_{name}_callback", None)
        if value is None:
            return []
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def __repr__(self) -> str:
        return f"<Task({self.task_type}): {getattr(self, 'task_id', '?')}>"
