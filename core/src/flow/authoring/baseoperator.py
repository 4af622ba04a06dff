"""BaseOperator: the unit of work in a DAG. Subclasses implement ``execute(context)``.

Operators take keyword arguments only. ``default_args`` (from the DAG, enclosing task groups and
the operator call) fill in any argument the operator accepts and the call did not give, as in
Airflow.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flow.authoring import context as dag_context
from flow.authoring.abstractoperator import (
    SCHEDULING_DEFAULTS,
    AbstractOperator,
    normalize_scheduling,
    validate_key,
)
from flow.authoring.collector import record_task
from flow.authoring.dependencies import chain, cross_downstream
from flow.authoring.location import user_location
from flow.authoring.params import ParamsDict
from flow.authoring.xcom_arg import iter_xcom_args
from flow.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from flow.authoring.dag import DAG
    from flow.authoring.mappedoperator import OperatorPartial
    from flow.authoring.taskgroup import TaskGroup

__all__ = ["BaseOperator", "chain", "cross_downstream"]

_accepted_params_cache: dict[type, frozenset[str]] = {}


def _accepted_params(cls: type) -> frozenset[str]:
    """Every keyword the operator class accepts: the parameters of each __init__ in its MRO."""
    cached = _accepted_params_cache.get(cls)
    if cached is None:
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                    names.add(param.name)
        names.discard("self")
        cached = _accepted_params_cache[cls] = frozenset(names)
    return cached


def resolve_defaults(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the current DAG, task group and the applicable default_args."""
    if dag_context.is_detached():
        return kwargs
    group: TaskGroup | None = kwargs.get("task_group")
    dag: DAG | None = kwargs.get("dag") or (group.dag if group is not None else None)
    dag = dag or dag_context.current_dag()
    if group is None:
        group = dag_context.current_task_group(dag)
    kwargs = dict(kwargs)
    if dag is not None:
        kwargs["dag"] = dag
    if group is not None:
        kwargs["task_group"] = group
    defaults: dict[str, Any] = {}
    if dag is not None:
        defaults.update(dag.default_args)
    if group is not None:
        defaults.update(group.merged_default_args())
    defaults.update(kwargs.get("default_args") or {})
    if defaults:
        accepted = _accepted_params(cls)
        for key, value in defaults.items():
            if key in accepted and key not in kwargs:
                kwargs[key] = value
    return kwargs


def _wrap_init(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        if self.__dict__.get("_flow_initialising"):  # a subclass's super().__init__(...)
            init(self, *args, **kwargs)
            return
        if args:
            raise DagDefinitionError(
                f"{type(self).__name__} takes keyword arguments only "
                f"(e.g. {type(self).__name__}(task_id=...)), got positional {args!r}",
                *user_location(1))
        self.__dict__["_flow_initialising"] = True
        try:
            init(self, **resolve_defaults(type(self), kwargs))
        except TypeError as err:
            if err.__traceback__ is not None and err.__traceback__.tb_next is None:
                # raised by the call itself: a missing or unexpected argument
                raise DagDefinitionError(f"{type(self).__name__} "
                                         f"{kwargs.get('task_id', '')!r}: {err}",
                                         *user_location(1)) from None
            raise
        finally:
            del self.__dict__["_flow_initialising"]
        self._after_init()

    wrapper._flow_wrapped = True  # type: ignore[attr-defined]
    return wrapper


class BaseOperator(AbstractOperator):
    """A task. Subclass it and implement ``execute(context)``; its return value is an XCom."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_flow_wrapped", False):
            cls.__init__ = _wrap_init(init)  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        task_id: str,
        owner: str = SCHEDULING_DEFAULTS["owner"],
        email: str | list[str] | None = None,
        email_on_failure: bool = True,
        email_on_retry: bool = True,
        retries: int | None = 0,
        retry_delay: timedelta | float = SCHEDULING_DEFAULTS["retry_delay"],
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        trigger_rule: str = SCHEDULING_DEFAULTS["trigger_rule"],
        depends_on_past: bool = False,
        wait_for_downstream: bool = False,
        pool: str = "default_pool",
        pool_slots: int = 1,
        priority_weight: int = 1,
        weight_rule: str = "downstream",
        queue: str = "default",
        executor: str | None = None,
        executor_config: dict[str, Any] | None = None,
        doc_md: str | None = None,
        doc: str | None = None,
        do_xcom_push: bool = True,
        multiple_outputs: bool = False,
        on_execute_callback: Any = None,
        on_success_callback: Any = None,
        on_failure_callback: Any = None,
        on_retry_callback: Any = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        params: Mapping[str, Any] | None = None,
        default_args: Mapping[str, Any] | None = None,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        **kwargs: Any,
    ) -> None:
        location = user_location(1)
        self.definition_file, self.definition_lineno = location
        if kwargs:
            raise DagDefinitionError(
                f"{type(self).__name__} {task_id!r} got unknown arguments: "
                f"{', '.join(sorted(kwargs))}", *location)
        validate_key("task_id", task_id, location)
        if task_group is not None and task_group.dag is not None:
            dag = dag or task_group.dag
            task_id = task_group.child_id(task_id)
        self.task_id = task_id
        self.task_group = None
        self._dag = None
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self._edge_locations = {}
        self.params = ParamsDict(params)
        values = normalize_scheduling(task_id, {
            "owner": owner, "email": email, "email_on_failure": email_on_failure,
            "email_on_retry": email_on_retry, "retries": retries, "retry_delay": retry_delay,
            "retry_exponential_backoff": retry_exponential_backoff,
            "max_retry_delay": max_retry_delay, "execution_timeout": execution_timeout,
            "trigger_rule": trigger_rule, "depends_on_past": depends_on_past,
            "wait_for_downstream": wait_for_downstream, "pool": pool, "pool_slots": pool_slots,
            "priority_weight": priority_weight, "weight_rule": weight_rule, "queue": queue,
            "executor": executor, "executor_config": executor_config, "doc_md": doc_md,
            "doc": doc, "do_xcom_push": do_xcom_push, "multiple_outputs": multiple_outputs,
            "on_execute_callback": on_execute_callback,
            "on_success_callback": on_success_callback,
            "on_failure_callback": on_failure_callback,
            "on_retry_callback": on_retry_callback, "start_date": start_date,
            "end_date": end_date,
        }, location)
        self.__dict__.update(values)
        if task_group is not None:
            self.task_group = task_group
        if dag is not None:
            self.dag = dag

    def _after_init(self) -> None:
        """Once the whole constructor ran: XComArgs in template fields become upstreams."""
        if dag_context.is_detached():
            return
        location = (self.definition_file, self.definition_lineno)
        for field in self.template_fields:
            for arg in iter_xcom_args(getattr(self, field, None)):
                arg.operator._add_downstream(self, location)
        record_task(self)

    # ---- mapping ------------------------------------------------------------------------------
    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """``BashOperator.partial(task_id="t").expand(bash_command=[...])``."""
        from flow.authoring.mappedoperator import OperatorPartial

        return OperatorPartial(cls, kwargs, user_location(1))

    # ---- running ------------------------------------------------------------------------------
    def execute(self, context: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    def on_kill(self) -> None:
        """Called when the task is killed (timeout, cancel): stop what execute started."""

    def render_template_fields(self, context: Mapping[str, Any], jinja_env: Any = None) -> None:
        """Render every template field in place; XComArgs and DAG params are resolved."""
        from flow.authoring.templating import LazyEnvironment, render

        env = jinja_env if jinja_env is not None else LazyEnvironment(self.dag)
        for field in self.template_fields:
            value = getattr(self, field, None)
            try:
                rendered = render(value, context, env, self.template_ext)
            except Exception as err:
                err.add_note(f"while rendering template field {field!r} of task "
                             f"{self.task_id!r}")
                raise
            setattr(self, field, rendered)

    def prepare_for_execution(self) -> BaseOperator:
        """A shallow copy whose template fields can be rendered without touching this task."""
        return copy.copy(self)


BaseOperator.__init__ = _wrap_init(BaseOperator.__init__)  # type: ignore[method-assign]
