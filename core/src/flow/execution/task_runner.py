"""Run one try of one task instance: the only code that starts and ends a try.

The lifecycle of a try, each step one committed, guarded transition:

1. **Start** ``queued -> running``: ``UPDATE task_instance ... WHERE state = 'queued' AND
   try_number = N`` plus a ``task_instance_try`` row, unique per (task instance, try). A late or
   duplicate start changes no row (or violates the unique constraint) and is reported as refused;
   the task does not run twice.
2. **Run**: clear the instance's old XComs, build the context, unmap a mapped task for its map
   index, render the template fields (stored, masked, in ``task_instance.rendered_fields``),
   call ``execute`` (under ``execution_timeout``), push the return value.
3. **Finish** ``running -> success | skipped | failed | up_for_retry``: guarded by
   ``state = 'running'``. ``TaskSkipped`` skips, ``TaskFailedNoRetry`` fails at once, any other
   error is retried while tries remain (``next_retry_at`` from the task's retry delay, with
   exponential backoff when configured).
4. **Callbacks** ``on_success``/``on_failure``/``on_retry`` with the context; one that raises is
   logged and changes nothing.

Who runs each step: in-process (``flow dags test``, :func:`run_task`) all four happen here. Under a
supervisor (``flow tasks run`` and the local executor; :mod:`flow.execution.supervisor`) the
supervisor commits steps 1 and 3 for every try it runs, many in one transaction
(:func:`start_tries`, :func:`finish_tries`), and the try's forked child runs steps 2 and 4
(:func:`run_started_try`): it reports its end, with the XComs it pushed, over a pipe. A child
that only runs Python code never opens a database connection.

After each committed transition ``flow_task_instance_state_changed`` is called through the plugin
facade. Everything the task logs or prints goes to its log file (see :mod:`flow.execution.logs`).

``execution_timeout`` is enforced in one of two ways. Run in-process (``flow dags test``), a
``SIGALRM`` raises ``TaskTimeout`` inside ``execute`` and the operator's ``on_kill`` is called.
Run under a supervisor (``flow tasks run``, the local executor; see
:mod:`flow.execution.supervisor`), the parent process is the authority: at the deadline it sends
``SIGTERM`` to the try's whole process group, which raises ``TaskTimeout`` here (``on_kill`` is
called), and ``SIGKILL`` after a grace period for a task that blocks signals or is stuck in C
code. The supervisor also heartbeats ``task_instance.last_heartbeat_at`` of its running tries
(:func:`heartbeat_tries`); when it finds one no longer running in the database (zombie
detection or a user ended it), it stops that task the same way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from flow.exceptions import FlowException, TaskFailedNoRetry, TaskSkipped, TaskTimeout
from flow.execution.context import build_context
from flow.execution.logs import base_log_folder, capture_task_output, log_path
from flow.execution.runtime import DagRunSnapshot, RuntimeTaskInstance, TaskInstanceSnapshot
from flow.states import TaskInstanceState as TIS
from flow.utils.timezone import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("flow.task")


@dataclass
class TaskRunResult:
    """The outcome of one ``run_task`` call."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    started: bool
    message: str = ""
    duration: float = 0.0
    log_path: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in {TIS.SUCCESS, TIS.SKIPPED}


class TaskTerminated(FlowException):
    """The try was asked to stop (``SIGTERM``): cancelled, ended elsewhere, or shut down."""


@dataclass(frozen=True)
class Supervision:
    """How a try runs under a supervising parent process (see the module docstring):
    ``deadline`` is the ``time.monotonic()`` at which the parent kills the try for its
    ``execution_timeout`` (None: no timeout)."""

    deadline: float | None = None


class _Outcome:
    def __init__(self, state: str, error: BaseException | None = None) -> None:
        self.state = state
        self.error = error


def run_task(dag: Any, task_id: str, run_id: str, *, map_index: int = -1,
             try_number: int | None = None, engine: Engine | None = None, plugins: Any = None,
             expected_state: str = TIS.QUEUED, echo: TextIO | None = None,
             supervision: Supervision | None = None,
             log_folder: str | None = None) -> TaskRunResult:
    """Run one try of ``dag.task_id`` in DAG run ``run_id`` (see the module docstring).

    ``try_number`` is the try the caller queued (the workload's); None means the row's current
    one. ``echo`` also writes the task's log to a stream (``flow tasks test``). ``supervision``
    is given by a supervising parent process; ``log_folder`` saves reading the configuration.
    """
    from flow.plugins import current
    from flow.store.session import get_engine

    engine = engine or get_engine()
    plugins = plugins or current()
    result = TaskRunResult(dag.dag_id, run_id, task_id, map_index, try_number or 0, None, False)
    backend = _xcom_backend(plugins)
    _stop_request.install(dag, task_id, supervision)
    started_row, refusal = _start(engine, dag.dag_id, run_id, task_id, map_index, try_number,
                                  expected_state, clear_xcoms=_clears_in_database(backend))
    if started_row is None:
        result.message = refusal
        return result
    row, run = started_row
    try_number = result.try_number = row.try_number
    result.state = row.state
    if refusal:
        result.message = refusal
        return result
    result.started, result.state = True, TIS.RUNNING
    snapshot = TaskInstanceSnapshot(dag.dag_id, run_id, task_id, map_index, try_number,
                                    TIS.RUNNING)
    plugins.task_instance_state_changed(snapshot, expected_state, TIS.RUNNING)
    path = log_path(log_folder or base_log_folder(), dag.dag_id, run_id, task_id, map_index,
                    try_number)
    result.log_path = str(path)
    started = time.monotonic()
    with capture_task_output(path, echo):
        try:
            attempt = _attempt(dag, row, run, try_number, engine, backend, supervision,
                               xcom_sink=None)
            result.duration = time.monotonic() - started
            _finish(engine, row, try_number, attempt.outcome, attempt.rendered, result,
                    attempt.task)
        except Exception as err:
            # flow's own failure (the DAG lost the task, the XCom backend is misconfigured):
            # never leave the try running.
            log.exception("the task runner failed before the try could finish")
            if result.state == TIS.RUNNING:
                result.duration = time.monotonic() - started
                _finish(engine, row, try_number, _Outcome(TIS.FAILED, err), None, result, None)
            attempt = None
        if result.state != TIS.RUNNING:
            plugins.task_instance_state_changed(
                TaskInstanceSnapshot(dag.dag_id, run_id, task_id, map_index, try_number,
                                     result.state), TIS.RUNNING, result.state)
        if attempt is not None and attempt.context:
            attempt.run_callbacks()
    return result


@dataclass
class Attempt:
    """What running a try's task produced, before its end is committed."""

    outcome: _Outcome
    rendered: dict[str, Any] | None
    task: Any
    context: dict[str, Any]

    def run_callbacks(self) -> None:
        self.context["exception"] = self.outcome.error
        _run_callbacks(self.task, self.outcome.state, self.context)

    def has_callbacks(self) -> bool:
        names = {TIS.SUCCESS: "success", TIS.FAILED: "failure", TIS.UP_FOR_RETRY: "retry"}
        name = names.get(self.outcome.state)
        return bool(self.context) and name is not None and any(
            True for _ in self.task.iter_callbacks(name))


def _attempt(dag: Any, row: _TaskRow, run: DagRunSnapshot, try_number: int,
             engine: Engine | None,
             backend: Any, supervision: Supervision | None,
             xcom_sink: dict[str, str] | None, channel: Any = None) -> Attempt:
    """Run the try's task (the state is already ``running``): clear old XComs when the start
    did not, build the context, render, execute, push the result. ``xcom_sink`` collects the
    pushed XComs (key -> stored text) for the caller to write with the try's end."""
    from flow.secrets.connection import accessor_context

    task = dag.get_task(row.task_id)
    ti = RuntimeTaskInstance(ti_id=row.id, dag=dag, task=task, run_id=row.run_id,
                             map_index=row.map_index, try_number=try_number,
                             max_tries=row.max_tries, engine=engine, xcom_backend=backend,
                             xcom_sink=xcom_sink, channel=channel)
    accessor = {"dag_id": dag.dag_id, "run_id": row.run_id, "task_id": row.task_id,
                "map_index": row.map_index, "try_number": try_number}
    context: dict[str, Any] = {}
    rendered: dict[str, Any] | None = None
    with accessor_context(accessor):
        log.info("running %r, try %d of %d", ti, try_number, row.max_tries + 1)
        try:
            if not _clears_in_database(backend):  # else the start cleared them
                with _session(engine) as session:
                    backend.clear(ti_id=row.id, session=session)
            params = dag.params.resolve(run.conf) if getattr(dag, "params", None) else {}
            context = build_context(dag=dag, task=task, ti=ti, run=run, params=params)
            concrete = _concrete_task(task, row.map_index, context)
            context["task"] = ti.task = concrete
            concrete.render_template_fields(context)
            rendered = _rendered_fields(concrete)
            value = _execute(concrete, context, supervision)
            _push_result(ti, concrete, value)
            outcome = _Outcome(TIS.SUCCESS)
        except TaskSkipped as err:
            log.info("task skipped: %s", err)
            outcome = _Outcome(TIS.SKIPPED)
        except TaskFailedNoRetry as err:
            log.error("task failed without retry: %s", err)
            outcome = _Outcome(TIS.FAILED, err)
        except Exception as err:
            log.error("task failed:\n%s", "".join(traceback.format_exception(err)).rstrip())
            retry = try_number <= row.max_tries
            outcome = _Outcome(TIS.UP_FOR_RETRY if retry else TIS.FAILED, err)
        return Attempt(outcome, rendered, context.get("task", task), context)


def run_started_try(dag: Any, started: StartedTry, *, engine: Engine | None, plugins: Any,
                    deadline: float | None, path: Path | str,
                    report: Callable[[TryEnd, bool], str | None], channel: Any = None,
                    output: TextIO | None = None) -> None:
    """Run, in a supervised child process, a try its supervisor started (see
    :mod:`flow.execution.supervisor`): the task's output goes to ``path``; ``report(end,
    wants_state)`` hands the try's end to the supervisor, which commits it and, when
    ``wants_state`` (the task has callbacks for that end), returns the state committed. The
    callbacks run only when that state is the try's own end. With ``channel`` (a
    :class:`~flow.execution.channel.SupervisorChannel`), the try's XCom reads go to the
    supervisor."""
    row, try_number = started.row, started.row.try_number
    backend = _xcom_backend(plugins)
    supervision = Supervision(deadline)
    _stop_request.install(dag, row.task_id, supervision)
    # The builtin backend's values travel with the try's end and are written in its commit.
    sink: dict[str, str] | None = {} if _clears_in_database(backend) else None
    began = time.monotonic()
    with capture_task_output(path, None, output):
        try:
            attempt = _attempt(dag, row, started.run, try_number, engine, backend, supervision,
                               sink, channel if sink is not None else None)
        except Exception as err:
            log.exception("the task runner failed before the try could finish")
            attempt = Attempt(_Outcome(TIS.FAILED, err), None, None, {})
        try:
            end = TryEnd.from_attempt(attempt, time.monotonic() - began, try_number,
                                      sink or {})
        except Exception as err:  # the retry delay could not be computed
            log.exception("the try's end could not be recorded as %s", attempt.outcome.state)
            end = TryEnd(TIS.FAILED, _redact(f"{type(err).__name__}: {err}"),
                         time.monotonic() - began)
        if end.state == TIS.UP_FOR_RETRY:
            log.info("marking for retry %d of %d in %g s", try_number + 1, row.max_tries + 1,
                     end.retry_delay or 0.0)
        else:
            log.info("marking task as %s", end.state.upper())
        wants_state = end.state == attempt.outcome.state and attempt.has_callbacks()
        committed = report(end, wants_state)
        if wants_state and committed == end.state:
            attempt.run_callbacks()
        elif wants_state:
            log.warning("the task instance was no longer running when this try ended; its "
                        "state was not changed to %s and its callbacks were not run", end.state)


def _concrete_task(task: Any, map_index: int, context: dict[str, Any]) -> Any:
    if getattr(task, "is_mapped", False):
        task = task.unmap(map_index, lambda arg: arg.resolve(context))
    return task.prepare_for_execution()


def _rendered_fields(task: Any) -> dict[str, Any]:
    from flow.scheduling.serialization import _jsonable
    from flow.secrets.masking import masker

    values = {name: _jsonable(getattr(task, name, None)) for name in task.template_fields}
    redacted: dict[str, Any] = masker().redact_value(values)
    return redacted


def _execute(task: Any, context: dict[str, Any], supervision: Supervision | None) -> Any:
    timeout = getattr(task, "execution_timeout", None)
    if supervision is not None:
        with _stop_request.killable(task):
            return task.execute(context)
    if timeout is None:
        return task.execute(context)
    with _alarm(timeout.total_seconds(), task):
        return task.execute(context)


class _StopRequest:
    """The supervisor's ``SIGTERM``, turned into an exception inside ``execute``.

    Outside ``execute`` (flow's own short steps: starting, rendering, pushing XComs) the stop is
    held and raised as ``execute`` begins, so it never tears a database write in half; a try
    stuck elsewhere is ended by the supervisor's ``SIGKILL``.
    """

    def __init__(self) -> None:
        self.in_execute = False
        self.pending: Exception | None = None
        self.early = False

    def hold(self) -> None:
        """In a child whose try is not known yet: keep a ``SIGTERM`` for :meth:`install`."""
        def on_early(signum: int, frame: Any) -> None:
            self.early = True

        signal.signal(signal.SIGTERM, on_early)

    def install(self, dag: Any, task_id: str, supervision: Supervision | None) -> None:
        if supervision is None or threading.current_thread() is not threading.main_thread():
            return
        timeout = getattr(dag.task_dict.get(task_id), "execution_timeout", None)
        deadline = supervision.deadline

        def on_terminate(signum: int, frame: Any) -> None:
            if self.pending is not None:
                return  # one stop is enough: a second must not interrupt on_kill
            if deadline is not None and time.monotonic() >= deadline - 0.01:
                seconds = timeout.total_seconds() if timeout is not None else 0.0
                self.pending = TaskTimeout(f"task {task_id!r} ran longer than its "
                                           f"execution_timeout of {seconds:g} seconds")
            else:
                self.pending = TaskTerminated(
                    f"task {task_id!r} was asked to stop (SIGTERM): cancelled, ended "
                    "elsewhere, or its worker is shutting down")
            if self.in_execute:
                self.in_execute = False
                raise self.pending

        signal.signal(signal.SIGTERM, on_terminate)
        if self.early:  # asked to stop before the try was known
            on_terminate(signal.SIGTERM, None)

    @contextlib.contextmanager
    def killable(self, task: Any) -> Iterator[None]:
        """Run ``execute`` stoppable; call the operator's ``on_kill`` when it is stopped."""
        try:
            if self.pending is not None:
                raise self.pending
            self.in_execute = True
            try:
                yield
            finally:
                self.in_execute = False
        except (TaskTimeout, TaskTerminated) as err:
            log.error("%s: calling %s.on_kill()", err, type(task).__name__)
            try:
                task.on_kill()
            except Exception:
                log.exception("on_kill of %s raised", task.task_id)
            raise


_stop_request = _StopRequest()


def hold_stop_requests() -> None:
    """Called first in a supervised child: a stop that arrives before the try runs is kept
    and raised as its ``execute`` begins."""
    _stop_request.hold()


def heartbeat_tries(engine: Engine, tries: list[tuple[int, int]]) -> list[bool]:
    """Set ``last_heartbeat_at`` of each running try (task instance id, try number) in one
    transaction; False for a try that is no longer running in the database (zombie detection
    or a user ended it): its supervisor stops it."""
    now = utcnow()
    with engine.begin() as connection:
        return [bool(connection.execute(_sql().heartbeat, {
            "w_id": ti_id, "w_state": TIS.RUNNING, "w_try_number": try_number,
            "last_heartbeat_at": now}).rowcount) for ti_id, try_number in tries]


@contextlib.contextmanager
def _alarm(seconds: float, task: Any) -> Iterator[None]:
    """Raise TaskTimeout inside the block after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        log.warning("execution_timeout of %s is enforced only on the main thread", task.task_id)
        yield
        return

    def on_timeout(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"task {task.task_id!r} ran longer than its execution_timeout of "
                          f"{seconds:g} seconds")

    previous = signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except TaskTimeout:
        log.error("execution_timeout reached: calling %s.on_kill()", type(task).__name__)
        try:
            task.on_kill()
        except Exception:
            log.exception("on_kill of %s raised", task.task_id)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _push_result(ti: RuntimeTaskInstance, task: Any, value: Any) -> None:
    if value is None or not getattr(task, "do_xcom_push", True):
        return
    if getattr(task, "multiple_outputs", False):
        if not isinstance(value, dict):
            raise TypeError(f"task {task.task_id!r} has multiple_outputs=True but returned "
                            f"{type(value).__name__}, not a dict")
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"task {task.task_id!r} has multiple_outputs=True; its keys "
                                f"must be strings, got {key!r}")
            ti.xcom_push(key, item)
    ti.xcom_push("return_value", value)


def _run_callbacks(task: Any, state: str, context: dict[str, Any]) -> None:
    names: dict[str, str] = {TIS.SUCCESS: "success", TIS.FAILED: "failure",
                             TIS.UP_FOR_RETRY: "retry"}
    name = names.get(state)
    if name is None:
        return
    for callback in task.iter_callbacks(name):
        try:
            callback(context)
        except Exception:
            log.exception("on_%s_callback %r of task %s raised; the task's state stays %s",
                          name, callback, task.task_id, state)


# ------------------------------------------------------------------------ guarded transitions


@contextlib.contextmanager
def _session(engine: Engine | None) -> Iterator[Any]:
    """A session on ``engine``, or on this process's default engine (made on first use)."""
    from flow.store.session import get_engine, session_scope

    with session_scope(engine if engine is not None else get_engine()) as session:
        yield session


@dataclass(frozen=True)
class _TaskRow:
    """The task instance row as the start transaction read it."""

    id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int


@dataclass(frozen=True)
class _Statements:
    """The statements of a try, built once per process on first use (:func:`_sql`): building
    a statement costs more than running it on SQLite, and SQLAlchemy caches each one's
    compiled form per engine, so a warm worker's forked children never compile. Values are
    bound at execution. Built on first use, not at import: a try's process that runs only the
    task does not import SQLAlchemy for them."""

    load: Any
    load_many: Any
    running_now: Any
    ended_now: Any
    guarded_ti: Any
    insert_try: Any
    update_try: Any
    heartbeat: Any
    insert_xcoms: Any
    clear_xcoms: Any
    clear_xcoms_many: Any
    delete_xcom_keys: Any


@functools.cache
def _sql() -> _Statements:
    from sqlalchemy import and_, bindparam, delete, insert, select, tuple_, update

    from flow.store.models import DagRun, TaskInstance, TaskInstanceTry, XComModel

    ti, run, tries = TaskInstance.__table__, DagRun.__table__, TaskInstanceTry.__table__
    xcom = XComModel.__table__
    load = (
        select(ti.c.id, ti.c.dag_id, ti.c.run_id, ti.c.task_id, ti.c.map_index, ti.c.state,
               ti.c.try_number, ti.c.max_tries, run.c.logical_date, run.c.data_interval_start,
               run.c.data_interval_end, run.c.run_type, run.c.state.label("run_state"),
               run.c.conf, run.c.start_date.label("run_start_date"), ti.c.pid, ti.c.hostname)
        .join_from(ti, run, and_(run.c.dag_id == ti.c.dag_id, run.c.run_id == ti.c.run_id))
        .where(ti.c.dag_id == bindparam("w_dag_id"), ti.c.run_id == bindparam("w_run_id"),
               ti.c.task_id == bindparam("w_task_id"),
               ti.c.map_index == bindparam("w_map_index")))
    guarded_ti = update(ti).where(ti.c.id == bindparam("w_id"),
                                  ti.c.state == bindparam("w_state"),
                                  ti.c.try_number == bindparam("w_try_number"))
    return _Statements(
        load=load,
        load_many=(
            select(*load.selected_columns)
            .join_from(ti, run, and_(run.c.dag_id == ti.c.dag_id, run.c.run_id == ti.c.run_id))
            .where(tuple_(ti.c.dag_id, ti.c.run_id, ti.c.task_id, ti.c.map_index)
                   .in_(bindparam("w_keys", expanding=True)))),
        running_now=select(ti.c.id, ti.c.try_number, ti.c.pid, ti.c.hostname).where(
            ti.c.id.in_(bindparam("w_ids", expanding=True)), ti.c.state == TIS.RUNNING),
        ended_now=select(ti.c.id, ti.c.state, ti.c.try_number, ti.c.end_date).where(
            ti.c.id.in_(bindparam("w_ids", expanding=True))),
        guarded_ti=guarded_ti,
        insert_try=insert(tries),
        update_try=update(tries).where(tries.c.task_instance_id == bindparam("w_id"),
                                       tries.c.try_number == bindparam("w_try_number")),
        heartbeat=guarded_ti,  # with only last_heartbeat_at set
        insert_xcoms=insert(xcom),
        clear_xcoms=delete(xcom).where(xcom.c.task_instance_id == bindparam("w_id")),
        clear_xcoms_many=delete(xcom).where(
            xcom.c.task_instance_id.in_(bindparam("w_ids", expanding=True))),
        delete_xcom_keys=delete(xcom).where(
            xcom.c.task_instance_id == bindparam("w_id"),
            xcom.c.key.in_(bindparam("w_keys", expanding=True))))


@dataclass(frozen=True)
class StartRequest:
    """One try a supervisor asks to start: ``pid`` is the process that will run it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int | None
    pid: int


@dataclass(frozen=True)
class StartedTry:
    """A started try: the rows its process needs to run it (JSON for the pipe to a child)."""

    row: _TaskRow
    run: DagRunSnapshot

    def to_json(self) -> dict[str, Any]:
        # vars(), not dataclasses.asdict: asdict deep-copies every value (the run's conf
        # too), ten times the cost, in the worker's loop once per try.
        run = dict(vars(self.run))
        for name in ("logical_date", "data_interval_start", "data_interval_end", "start_date"):
            run[name] = run[name].isoformat() if run[name] is not None else None
        return {"row": dict(vars(self.row)), "run": run}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StartedTry:
        run = dict(data["run"])
        for name in ("logical_date", "data_interval_start", "data_interval_end", "start_date"):
            run[name] = datetime.fromisoformat(run[name]) if run[name] is not None else None
        return cls(_TaskRow(**data["row"]), DagRunSnapshot(**run))


def start_tries(engine: Engine, requests: list[StartRequest], *, expected_state: str = TIS.QUEUED,
                clear_xcoms: bool = True) -> list[tuple[StartedTry | None, str]]:
    """Start many tries in one transaction (see :func:`_start_in`); per request, the started
    try (None: no such task instance) and a refusal message ("" when it started). A unique
    violation (one of them was already started) retries them one transaction each."""
    from sqlalchemy.exc import IntegrityError

    now, hostname = utcnow(), _host()
    keys = {(r.dag_id, r.run_id, r.task_id, r.map_index) for r in requests}
    try:
        with engine.begin() as connection:
            if len(requests) > 1 and len(keys) == len(requests):
                return _start_many(connection, requests, expected_state, clear_xcoms, now,
                                   hostname)
            return [_start_in(connection, request, expected_state, clear_xcoms, now, hostname)
                    for request in requests]
    except IntegrityError:
        if len(requests) == 1:
            return [(None, f"refused to start try {requests[0].try_number}: that try was "
                           "already started")]
        return [start_tries(engine, [request], expected_state=expected_state,
                            clear_xcoms=clear_xcoms)[0] for request in requests]


def find_started_try(engine: Engine, request: StartRequest) -> StartedTry | None:
    """The try the database says was started for process ``request.pid`` on this machine
    (``running`` at ``request.try_number``), or None: how a child whose supervisor died between
    committing its start and telling it learns that it must run its try."""
    with engine.connect() as connection:
        found = connection.execute(_sql().load, _load_params(request)).one_or_none()
    if (found is None or found.state != TIS.RUNNING or found.try_number != request.try_number
            or found.pid != request.pid or found.hostname != _host()):
        return None
    return _started_from(found)


def _started_from(found: Any) -> StartedTry:
    """The task instance and run of a row of the load statement (:func:`_sql`)."""
    return StartedTry(
        _TaskRow(found.id, found.dag_id, found.run_id, found.task_id, found.map_index,
                 found.state, found.try_number, found.max_tries),
        DagRunSnapshot(found.dag_id, found.run_id, found.logical_date,
                       found.data_interval_start, found.data_interval_end, found.run_type,
                       found.run_state, dict(found.conf or {}), found.run_start_date))


def _start(engine: Engine, dag_id: str, run_id: str, task_id: str, map_index: int,
           try_number: int | None, expected_state: str, *, clear_xcoms: bool,
           ) -> tuple[tuple[_TaskRow, DagRunSnapshot] | None, str]:
    """Start one try in this process; returns the rows read (None: no such task instance) and
    a refusal message ("" when the try started)."""
    [(started, refusal)] = start_tries(
        engine, [StartRequest(dag_id, run_id, task_id, map_index, try_number, os.getpid())],
        expected_state=expected_state, clear_xcoms=clear_xcoms)
    return (None if started is None else (started.row, started.run)), refusal


def _start_many(connection: Any, requests: list[StartRequest], expected_state: str,
                clear_xcoms: bool, now: datetime, hostname: str,
                ) -> list[tuple[StartedTry | None, str]]:
    """:func:`_start_in` for many task instances (each once) in a few statements whatever
    their number: one read, the guarded updates in one ``executemany``, the try records in
    another, one XCom delete. Which updates took effect is read back only when some did not
    (another process moved a task instance first): the rows now running for this request's
    process on this host, at its try."""
    found = {(f.dag_id, f.run_id, f.task_id, f.map_index): f
             for f in _load_many(connection, requests)}
    reads: list[StartedTry | None] = []
    updates: list[dict[str, Any]] = []
    for request in requests:
        row = found.get((request.dag_id, request.run_id, request.task_id, request.map_index))
        read = None if row is None else _started_from(row)
        reads.append(read)
        if read is not None:
            number = request.try_number if request.try_number is not None \
                else read.row.try_number
            updates.append(_running_values(read.row.id, expected_state, number, request.pid,
                                           now, hostname))
    sql = _sql()
    changed = connection.execute(sql.guarded_ti, updates).rowcount if updates else 0
    if changed == len(updates):
        started = {u["w_id"] for u in updates}
    else:
        ours = {u["w_id"]: (u["w_try_number"], u["pid"]) for u in updates}
        started = {row.id for row in connection.execute(sql.running_now, {"w_ids": sorted(ours)})
                   if ours[row.id] == (row.try_number, row.pid) and row.hostname == hostname}
    if started:
        connection.execute(sql.insert_try, [_try_row(u) for u in updates if u["w_id"] in started])
        earlier = sorted(u["w_id"] for u in updates
                         if u["w_id"] in started and _has_earlier_tries(u))
        if clear_xcoms and earlier:
            connection.execute(sql.clear_xcoms_many, {"w_ids": earlier})
    numbers = {u["w_id"]: u["w_try_number"] for u in updates}
    results: list[tuple[StartedTry | None, str]] = []
    for request, read in zip(requests, reads, strict=True):
        if read is None:
            results.append((None, _not_found(request)))
        elif read.row.id in started:
            number = numbers[read.row.id]
            results.append((StartedTry(replace(read.row, state=TIS.RUNNING, try_number=number),
                                       read.run), ""))
        else:
            results.append((read, _refused(read.row, numbers[read.row.id], expected_state)))
    return results


def _load_many(connection: Any, requests: list[StartRequest]) -> list[Any]:
    """The load statement's rows of ``requests``: in one query on a server; on SQLite, whose
    planner scans the whole table for a row-value ``IN``, one indexed lookup each (no round
    trips)."""
    sql = _sql()
    if connection.dialect.name == "sqlite":
        return [row for r in requests
                if (row := connection.execute(sql.load, _load_params(r)).one_or_none())
                is not None]
    return list(connection.execute(sql.load_many, {"w_keys": [
        (r.dag_id, r.run_id, r.task_id, r.map_index) for r in requests]}))


def _load_params(request: StartRequest) -> dict[str, Any]:
    return {"w_dag_id": request.dag_id, "w_run_id": request.run_id,
            "w_task_id": request.task_id, "w_map_index": request.map_index}


def _running_values(ti_id: int, expected_state: str, number: int, pid: int, now: datetime,
                    hostname: str) -> dict[str, Any]:
    """The guarded ``expected_state -> running`` update of a try's start (``_GUARDED_TI``)."""
    return {"w_id": ti_id, "w_state": expected_state, "w_try_number": number,
            "state": TIS.RUNNING, "start_date": now, "end_date": None, "duration": None,
            "hostname": hostname, "pid": pid, "next_retry_at": None, "last_heartbeat_at": now,
            "updated_at": now}


def _try_row(running: dict[str, Any]) -> dict[str, Any]:
    """The try record (``_INSERT_TRY``) of a start made with ``running``."""
    return {"task_instance_id": running["w_id"], "try_number": running["w_try_number"],
            "state": TIS.RUNNING, "hostname": running["hostname"], "pid": running["pid"],
            "start_date": running["start_date"]}


def _has_earlier_tries(running: dict[str, Any]) -> bool:
    """Whether a start's XComs need clearing: a first try has none (XComs are written only by
    the instance's own tries, and go with it, ON DELETE CASCADE)."""
    return bool(running["w_try_number"] > 1)


def _not_found(request: StartRequest) -> str:
    return (f"no task instance {request.dag_id}.{request.task_id}[{request.map_index}] in run "
            f"{request.run_id!r}: it must be created (and queued) first")


def _refused(row: _TaskRow, number: int, expected_state: str) -> str:
    return (f"refused to start try {number}: the task instance is {row.state or 'none'} at "
            f"try {row.try_number}, not {expected_state} at try {number} (a late or duplicate "
            "start)")


def _start_in(connection: Any, request: StartRequest, expected_state: str, clear_xcoms: bool,
              now: datetime, hostname: str) -> tuple[StartedTry | None, str]:
    """Read the task instance and its run, move ``expected_state -> running``, record the try
    and clear the instance's XComs of earlier tries, in the caller's transaction. A refused
    start changes nothing."""
    found = connection.execute(_sql().load, _load_params(request)).one_or_none()
    if found is None:
        return None, _not_found(request)
    read = _started_from(found)
    row, run = read.row, read.run
    number = request.try_number if request.try_number is not None else row.try_number
    running = _running_values(row.id, expected_state, number, request.pid, now, hostname)
    if not connection.execute(_sql().guarded_ti, running).rowcount:
        return read, _refused(row, number, expected_state)
    connection.execute(_sql().insert_try, _try_row(running))
    if clear_xcoms and _has_earlier_tries(running):
        connection.execute(_sql().clear_xcoms, {"w_id": row.id})
    return StartedTry(replace(row, state=TIS.RUNNING, try_number=number), run), ""


@dataclass
class TryEnd:
    """How a try ended, as its process reports it to its supervisor (JSON on the result
    pipe): committed by :func:`finish_tries`."""

    state: str
    error: str | None = None
    duration: float = 0.0
    rendered: dict[str, Any] | None = None
    retry_delay: float | None = None  # seconds, for up_for_retry
    xcoms: dict[str, str] = field(default_factory=dict)  # key -> stored text

    def to_json(self) -> dict[str, Any]:
        # Its fields as they are (JSON already): asdict would deep-copy them, in every child.
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TryEnd:
        return cls(**data)

    @classmethod
    def from_attempt(cls, attempt: Attempt, duration: float, try_number: int,
                     xcoms: dict[str, str]) -> TryEnd:
        outcome, error = attempt.outcome, None
        if outcome.error is not None:
            error = _redact(f"{type(outcome.error).__name__}: {outcome.error}")
        delay = None
        if outcome.state == TIS.UP_FOR_RETRY:
            delay = attempt.task.get_retry_delay(try_number).total_seconds()
        return cls(outcome.state, error, duration, attempt.rendered, delay, dict(xcoms))


@dataclass(frozen=True)
class EndResult:
    """What :func:`finish_tries` did with one try's end: ``committed`` when it was this end
    that moved the try out of ``running``; ``state`` is the task instance's state afterwards
    at that try (None when the instance has moved on to another try)."""

    committed: bool
    state: str | None


def finish_tries(engine: Engine, ends: list[tuple[_TaskRow, int, TryEnd]]) -> list[EndResult]:
    """End many running tries in one transaction, each ``running -> state`` guarded by
    ``state = 'running' AND try_number = N``, with its try record and the XComs it pushed.
    When someone else ended a try first, theirs wins (its XComs are dropped) and the state they
    set is read back in the same transaction."""
    now = utcnow()
    results: list[EndResult] = []
    with engine.begin() as connection:
        after = _finish_many(connection, ends, now)
        for row, try_number, end in ends:
            current = after[row.id]
            same_try = current is not None and current.try_number == try_number
            if not (same_try and current.end_date == now and current.state == end.state):
                results.append(EndResult(False, current.state if same_try else None))
                continue
            results.append(EndResult(True, end.state))
            if end.xcoms:
                sql = _sql()
                connection.execute(sql.delete_xcom_keys, {"w_id": row.id,
                                                          "w_keys": sorted(end.xcoms)})
                connection.execute(sql.insert_xcoms, [
                    {"task_instance_id": row.id, "dag_id": row.dag_id, "run_id": row.run_id,
                     "task_id": row.task_id, "map_index": row.map_index, "key": key,
                     "value": text, "timestamp": now} for key, text in end.xcoms.items()])
    return results


def _finish_many(connection: Any, ends: list[tuple[_TaskRow, int, TryEnd]],
                 now: datetime) -> dict[int, Any]:
    """The guarded ends of tries, in one ``executemany`` per shape of update (most ends of a
    batch have the same), their try records in another; returns each task instance's
    ``(state, try_number, end_date)`` afterwards, read back only when some update did not take
    effect (None when the row is gone). An end took effect when the row has its state and try
    and this transaction's ``end_date``."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row, try_number, end in ends:
        values = _end_values(row.id, try_number, end, now)
        shapes.setdefault(tuple(sorted(values)), []).append(values)
    sql = _sql()
    changed = sum(connection.execute(sql.guarded_ti, batch).rowcount
                  for batch in shapes.values())
    connection.execute(sql.update_try, [_try_end_values(row.id, try_number, end, now)
                                        for row, try_number, end in ends])
    if changed == len(ends):
        return {row.id: _Ended(end.state, try_number, now) for row, try_number, end in ends}
    found = {r.id: r for r in connection.execute(sql.ended_now,
                                                 {"w_ids": sorted({r.id for r, _, _ in ends})})}
    return {row.id: found.get(row.id) for row, _, _ in ends}


@dataclass(frozen=True)
class _Ended:
    state: str
    try_number: int
    end_date: datetime


def _end_values(ti_id: int, try_number: int, end: TryEnd, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"w_id": ti_id, "w_try_number": try_number,
                              "w_state": TIS.RUNNING, "state": end.state, "end_date": now,
                              "duration": end.duration, "updated_at": now}
    if end.rendered is not None:
        values["rendered_fields"] = end.rendered
    if end.state == TIS.UP_FOR_RETRY:
        values["next_retry_at"] = now + timedelta(seconds=end.retry_delay or 0.0)
    return values


def _try_end_values(ti_id: int, try_number: int, end: TryEnd, now: datetime) -> dict[str, Any]:
    return {"w_id": ti_id, "w_try_number": try_number, "state": end.state, "end_date": now,
            "duration": end.duration, "error": end.error}


def _finish(engine: Engine, row: _TaskRow, try_number: int, outcome: _Outcome,
            rendered: dict[str, Any] | None, result: TaskRunResult, task: Any) -> None:
    error = None
    if outcome.error is not None:
        error = _redact(f"{type(outcome.error).__name__}: {outcome.error}")
    delay = None
    if outcome.state == TIS.UP_FOR_RETRY:
        delay = task.get_retry_delay(try_number).total_seconds()
        log.info("marking for retry %d of %d in %g s", try_number + 1, row.max_tries + 1,
                 delay)
    else:
        log.info("marking task as %s", outcome.state.upper())
    end = TryEnd(outcome.state, error, result.duration, rendered, delay)
    [ended] = finish_tries(engine, [(row, try_number, end)])
    if ended.committed:
        result.state = outcome.state
    else:
        # Someone else (zombie detection, a user marking it) ended this try first: theirs wins.
        log.warning("the task instance was no longer running when this try ended; its state "
                    "was not changed to %s", outcome.state)
        result.state = TIS.RUNNING
        result.message = "state changed by someone else while running"
    result.error = error


_hostname: list[str] = []


def _host() -> str:
    """This machine's name, looked up once per process (forked children inherit it)."""
    if not _hostname:
        _hostname.append(socket.gethostname())
    return _hostname[0]


_backends: dict[int, tuple[Any, Any]] = {}


def _xcom_backend(plugins: Any) -> Any:
    """The configured XCom backend, built once per plugin manager (and inherited by forks)."""
    from flow.execution.xcom import get_xcom_backend

    cached = _backends.get(id(plugins))
    if cached is None or cached[0] is not plugins:
        cached = _backends[id(plugins)] = (plugins, get_xcom_backend(plugins))
    return cached[1]


def _clears_in_database(backend: Any) -> bool:
    """Whether clearing ``backend``'s XComs is the builtin DELETE, which the start transaction
    runs itself (another backend's ``clear`` runs on its own, after the start)."""
    from flow.execution.xcom import DatabaseXComBackend

    return type(backend).clear is DatabaseXComBackend.clear


def _redact(text: str) -> str:
    from flow.secrets.masking import redact

    return redact(text)


def echo_stream() -> TextIO:
    """The terminal, even while a task's output is being captured."""
    return sys.__stdout__ or sys.stdout


def warm_up_try(plugins: Any) -> None:
    """Pay once, in a process that forks tries, what every try would pay again in its child:
    importing the modules a try uses, a first template, the masker, the XCom backend. Imports
    no SQLAlchemy (a fork server calls it)."""
    import flow.authoring.macros
    import flow.authoring.templating
    import flow.scheduling.serialization
    from flow.secrets.masking import masker

    flow.authoring.templating.make_environment(None).from_string("{{ ds }}")
    masker()
    _xcom_backend(plugins)


def warm_up(engine: Engine, plugins: Any) -> None:
    """:func:`warm_up_try`, and the try's SQL statements compiled once in the process that
    starts and ends tries (SQLAlchemy caches them per engine): runs them against no row, in a
    rolled-back transaction."""
    from sqlalchemy.exc import IntegrityError

    from flow.execution.xcom import stored_xcoms

    warm_up_try(plugins)
    nothing, now, sql = -1, utcnow(), _sql()
    guard = {"w_id": nothing, "w_try_number": nothing}
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(sql.load, {"w_dag_id": "", "w_run_id": "", "w_task_id": "",
                                      "w_map_index": nothing}).one_or_none()
        connection.execute(sql.guarded_ti, {
            **guard, "w_state": TIS.QUEUED, "state": TIS.RUNNING, "start_date": now,
            "end_date": None, "duration": None, "hostname": "", "pid": nothing,
            "next_retry_at": None, "last_heartbeat_at": now, "updated_at": now})
        connection.execute(sql.clear_xcoms, {"w_id": nothing})
        for indexes in (None, [nothing]):  # the XCom reads a supervisor answers for its tries
            stored_xcoms(connection, dag_id="", run_id="", task_ids=[""], key="",
                         map_indexes=indexes)
        for rendered in ({"rendered_fields": {}}, {}):  # with and without rendered fields
            connection.execute(sql.guarded_ti, {**guard, "w_state": TIS.RUNNING,
                                                "state": TIS.SUCCESS, "end_date": now,
                                                "duration": 0.0, "updated_at": now,
                                                **rendered})
        connection.execute(sql.update_try, {**guard, "state": TIS.SUCCESS, "end_date": now,
                                            "duration": 0.0, "error": None})
        connection.execute(sql.heartbeat, {**guard, "w_state": TIS.RUNNING,
                                           "last_heartbeat_at": now})
        transaction.rollback()
    # Compiled and cached before the database refuses it (no task instance -1): last, because
    # on PostgreSQL an error ends the transaction.
    with contextlib.suppress(IntegrityError), engine.connect() as connection, \
            connection.begin() as transaction:
        connection.execute(sql.insert_try, {"task_instance_id": nothing, "try_number": nothing,
                                            "state": TIS.RUNNING, "hostname": "",
                                            "pid": nothing, "start_date": now})
        transaction.rollback()
