"""DAG: a named graph of tasks with a schedule; ``@dag`` builds one from a function."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from flow.authoring import context as dag_context
from flow.authoring.abstractoperator import validate_key
from flow.authoring.collector import record_dag
from flow.authoring.location import user_location
from flow.authoring.params import NOTSET, Param, ParamsDict
from flow.authoring.taskgroup import TaskGroup
from flow.exceptions import DagCycleError, DagDefinitionError, DuplicateTaskIdError

if TYPE_CHECKING:
    from flow.scheduling.timetables import Timetable

_UNSET: Any = object()


@functools.cache
def default_timezone() -> tzinfo:
    """``[core] default_timezone``: the timezone of naive datetimes in DAG files."""
    from flow.config import load_config
    from flow.utils.timezone import parse_timezone

    return parse_timezone(str(load_config().get("core", "default_timezone")))


def _dag_timezone(start_date: datetime | None) -> tzinfo:
    if start_date is not None and start_date.tzinfo is not None:
        return start_date.tzinfo
    return default_timezone()


def _aware(value: datetime | None, tz: tzinfo) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=tz)


class DAG:
    """``with DAG("etl", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag: ...``

    ``schedule`` is None (manual runs only, the default), a cron expression or preset
    (``@once``, ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``), a timedelta,
    or a Timetable. Naive datetimes are in ``[core] default_timezone``; the DAG's timezone is
    its start_date's when that is aware.
    """

    def __init__(
        self,
        dag_id: str,
        description: str | None = None,
        schedule: Any = _UNSET,
        *,
        schedule_interval: Any = _UNSET,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        catchup: bool = False,
        max_active_runs: int = 16,
        max_active_tasks: int = 16,
        dagrun_timeout: timedelta | None = None,
        on_success_callback: Any = None,
        on_failure_callback: Any = None,
        doc_md: str | None = None,
        is_paused_upon_creation: bool | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        user_defined_macros: Mapping[str, Any] | None = None,
        user_defined_filters: Mapping[str, Callable[..., Any]] | None = None,
        owner_links: Mapping[str, str] | None = None,
        fileloc: str | None = None,
        lineno: int | None = None,
    ) -> None:
        if fileloc is None:
            fileloc, lineno = user_location(1)
        self.fileloc: str = fileloc
        self.lineno: int = lineno or 0
        location = (self.fileloc, self.lineno)
        validate_key("dag_id", dag_id, location)
        self.dag_id = dag_id
        self.description = description
        self.default_args: dict[str, Any] = dict(default_args or {})
        start_date = start_date or self.default_args.get("start_date")
        end_date = end_date or self.default_args.get("end_date")
        self.timezone: tzinfo = _dag_timezone(start_date)
        self.start_date = _aware(start_date, self.timezone)
        self.end_date = _aware(end_date, self.timezone)
        if schedule is not _UNSET and schedule_interval is not _UNSET:
            raise DagDefinitionError(f"DAG {dag_id!r}: give schedule or schedule_interval, "
                                     "not both", *location)
        self.schedule = None if schedule is _UNSET else schedule
        if schedule_interval is not _UNSET:
            self.schedule = schedule_interval
        self.timetable: Timetable = self._make_timetable(location)
        self.params = ParamsDict(self.default_args.get("params")).merged(ParamsDict(params))
        self.tags: list[str] = list(tags or [])
        self.catchup = catchup
        self.max_active_runs = max_active_runs
        self.max_active_tasks = max_active_tasks
        self.dagrun_timeout = dagrun_timeout
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.doc_md = doc_md
        self.is_paused_upon_creation = is_paused_upon_creation
        if isinstance(template_searchpath, str):
            template_searchpath = [template_searchpath]
        self.template_searchpath: list[str] = list(template_searchpath or [])
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.owner_links = dict(owner_links or {})
        self.task_dict: dict[str, Any] = {}
        self.task_group = TaskGroup.create_root(self)
        record_dag(self)

    def _make_timetable(self, location: tuple[str, int]) -> Timetable:
        from flow.scheduling.timetables import create_timetable

        try:
            return create_timetable(self.schedule, self.timezone)
        except DagDefinitionError as err:
            raise DagDefinitionError(f"DAG {self.dag_id!r}: {err.message}", *location) from None

    # ---- tasks ------------------------------------------------------------------------------
    def add_task(self, task: Any) -> None:
        """Register ``task`` (called when a task joins the DAG); a task_id may appear once."""
        existing = self.task_dict.get(task.task_id)
        if existing is not None and existing is not task:
            raise DuplicateTaskIdError(
                f"task_id {task.task_id!r} is already used in DAG {self.dag_id!r} (first "
                f"defined at {existing.definition_file}:{existing.definition_lineno})",
                task.definition_file, task.definition_lineno)
        if task.task_id in self.task_group.used_group_ids:
            raise DuplicateTaskIdError(
                f"task_id {task.task_id!r} is already a task group id in DAG {self.dag_id!r}",
                task.definition_file, task.definition_lineno)
        self.task_dict[task.task_id] = task
        group = task.task_group or self.task_group
        group.add(task)
        task.task_group = group

    def add_tasks(self, tasks: Iterable[Any]) -> None:
        for task in tasks:
            task.dag = self

    @property
    def tasks(self) -> list[Any]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def task_count(self) -> int:
        return len(self.task_dict)

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> Any:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise KeyError(f"DAG {self.dag_id!r} has no task {task_id!r}; its tasks are: "
                           f"{', '.join(self.task_dict) or '(none)'}") from None

    @property
    def roots(self) -> list[Any]:
        return [task for task in self.task_dict.values() if not task.upstream_task_ids]

    @property
    def leaves(self) -> list[Any]:
        return [task for task in self.task_dict.values() if not task.downstream_task_ids]

    @property
    def owner(self) -> str:
        if "owner" in self.default_args:
            return str(self.default_args["owner"])
        owners = sorted({str(task.owner) for task in self.task_dict.values()})
        return ", ".join(owners) or "flow"

    @property
    def folder(self) -> str:
        return os.path.dirname(self.fileloc)

    # ---- checks and order -------------------------------------------------------------------
    def check_cycle(self) -> None:
        """Raise DagCycleError naming the tasks in the first cycle found ("a -> b -> a")."""
        visiting, done = set(), set()
        for start in self.task_dict:
            if start in done:
                continue
            path = [start]
            visiting.add(start)
            stack = [iter(sorted(self.task_dict[start].downstream_task_ids))]
            while stack:
                for child in stack[-1]:
                    if child in visiting:
                        self._raise_cycle([*path[path.index(child):], child])
                    if child not in done and child in self.task_dict:
                        visiting.add(child)
                        path.append(child)
                        stack.append(iter(sorted(self.task_dict[child].downstream_task_ids)))
                        break
                else:
                    node = path.pop()
                    visiting.discard(node)
                    done.add(node)
                    stack.pop()

    def _raise_cycle(self, cycle: list[str]) -> None:
        closing = self.task_dict[cycle[-2]].edge_location(cycle[-1])
        where = closing or (self.fileloc, self.lineno)
        raise DagCycleError(f"DAG {self.dag_id!r} has a cycle: {' -> '.join(cycle)}", *where)

    def topological_sort(self) -> list[Any]:
        """Tasks in dependency order; ties keep the order in which tasks were defined."""
        self.check_cycle()
        waiting = {task_id: len(task.upstream_task_ids & self.task_dict.keys())
                   for task_id, task in self.task_dict.items()}
        order: list[Any] = []
        ready = [task_id for task_id, count in waiting.items() if count == 0]
        position = {task_id: index for index, task_id in enumerate(self.task_dict)}
        while ready:
            ready.sort(key=position.__getitem__, reverse=True)
            task = self.task_dict[ready.pop()]
            order.append(task)
            for child in task.downstream_task_ids:
                if child in waiting:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        ready.append(child)
        return order

    def validate(self) -> None:
        """Raise DagDefinitionError (with file and line) if the DAG cannot run as written."""
        self.check_cycle()
        try:
            self.params.validate()
        except DagDefinitionError as err:
            raise type(err)(f"DAG {self.dag_id!r}: {err.message}", self.fileloc,
                            self.lineno) from None

    # ---- running ----------------------------------------------------------------------------
    def get_template_env(self) -> Any:
        from flow.authoring.templating import LazyEnvironment

        return LazyEnvironment(self).get()

    def test(self, logical_date: datetime | None = None,
             conf: Mapping[str, Any] | None = None) -> Any:
        """Run one DAG run in this process, in dependency order, and return its result."""
        from flow.execution.dag_test import run_dag_test

        self.validate()
        return run_dag_test(self, logical_date=logical_date,
                            conf=dict(conf) if conf is not None else None)

    def cli(self) -> None:
        """``python my_dag.py --help``: the dags/tasks commands for this one DAG."""
        from flow.cli.dag_cli import run_dag_cli

        run_dag_cli(self)

    # ---- context manager --------------------------------------------------------------------
    def __enter__(self) -> DAG:
        dag_context.push_dag(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        dag_context.pop_dag()
        if exc_type is None:
            self.check_cycle()

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"


def dag(dag_id: str | Callable[..., Any] | None = None, **dag_kwargs: Any) -> Any:
    """``@dag`` / ``@dag(schedule=..., start_date=...)``: calling the function creates the DAG.

    The function's parameters become DAG params (their defaults are the params' defaults; a
    Param default keeps its schema); inside the function each parameter is a reference that
    tasks receive as the run's param value.
    """
    if callable(dag_id):
        return _DagFactory(dag_id, dict(dag_kwargs))
    if dag_id is not None:
        dag_kwargs["dag_id"] = dag_id
    return lambda function: _DagFactory(function, dict(dag_kwargs))


class _DagFactory:
    def __init__(self, function: Callable[..., Any], dag_kwargs: dict[str, Any]) -> None:
        self.function = function
        self.dag_kwargs = dag_kwargs
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> DAG:
        from flow.authoring.xcom_arg import DagParam

        bound = self.signature.bind_partial(*args, **kwargs)
        params = dict(self.dag_kwargs.get("params") or {})
        names = []
        for name, parameter in self.signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            names.append(name)
            if name in bound.arguments:
                declared = params.get(name, parameter.default)
                params[name] = _with_default(declared, bound.arguments[name])
            elif parameter.default is not parameter.empty:
                params[name] = _with_default(params.get(name), parameter.default)
            elif name not in params:
                params[name] = Param()
        code = self.function.__code__
        dag_kwargs = {**self.dag_kwargs, "params": params}
        dag_kwargs.setdefault("dag_id", self.function.__name__)
        if self.function.__doc__ and "doc_md" not in dag_kwargs:
            dag_kwargs["doc_md"] = inspect.cleandoc(self.function.__doc__)
        the_dag = DAG(fileloc=os.path.abspath(code.co_filename), lineno=code.co_firstlineno,
                      **dag_kwargs)
        with the_dag:
            self.function(**{name: DagParam(name, the_dag.params.get(name)) for name in names})
        return the_dag


def _with_default(existing: Any, value: Any) -> Any:
    """A new default for a param, keeping the schema of a Param given in params=."""
    if isinstance(value, Param) or not isinstance(existing, Param):
        return value
    return Param(value, description=existing.description, **existing.schema)


__all__ = ["DAG", "NOTSET", "dag"]
