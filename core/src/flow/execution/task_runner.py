"""Run one try of one task instance: the only code that ends a ``running`` task instance.

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

After each committed transition ``flow_task_instance_state_changed`` is called through the plugin
facade. Everything the task logs or prints goes to its log file (see :mod:`flow.execution.logs`).

``execution_timeout`` is enforced in one of two ways. Run in-process (``flow dags test``), a
``SIGALRM`` raises ``TaskTimeout`` inside ``execute`` and the operator's ``on_kill`` is called.
Run under a supervisor (``flow tasks run``, the local executor; see
:mod:`flow.execution.supervisor`), the parent process is the authority: at the deadline it sends
``SIGTERM`` to the try's whole process group, which raises ``TaskTimeout`` here (``on_kill`` is
called), and ``SIGKILL`` after a grace period for a task that blocks signals or is stuck in C
code. A supervised try also heartbeats ``task_instance.last_heartbeat_at`` from a thread; when
the heartbeat finds the try no longer running in the database (zombie detection or a user ended
it), the task is stopped the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from flow.exceptions import FlowException, TaskFailedNoRetry, TaskSkipped, TaskTimeout
from flow.execution.context import build_context
from flow.execution.logs import base_log_folder, capture_task_output, log_path
from flow.execution.runtime import DagRunSnapshot, RuntimeTaskInstance, TaskInstanceSnapshot
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagRun, TaskInstance, TaskInstanceTry
from flow.utils.timezone import utcnow

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
    """How a try runs under a supervising parent process (see the module docstring).

    ``deadline`` is the ``time.monotonic()`` at which the parent kills the try for its
    ``execution_timeout`` (None: no timeout); ``heartbeat_interval`` the seconds between
    heartbeats (None: no heartbeat); ``on_started`` is called once the try is running.
    """

    deadline: float | None = None
    heartbeat_interval: float | None = None
    on_started: Callable[[], None] | None = None


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
    with _session(engine) as session:
        row = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index))
        run_row = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                      DagRun.run_id == run_id))
    result = TaskRunResult(dag.dag_id, run_id, task_id, map_index, try_number or 0, None, False)
    if row is None or run_row is None:
        result.message = (f"no task instance {dag.dag_id}.{task_id}[{map_index}] in run "
                          f"{run_id!r}: it must be created (and queued) first")
        return result
    try_number = try_number if try_number is not None else row.try_number
    result.try_number, result.state = try_number, row.state
    _stop_request.install(dag, task_id, supervision)
    refusal = _start(engine, row.id, try_number, expected_state)
    if refusal:
        result.message = refusal
        return result
    result.started, result.state = True, TIS.RUNNING
    if supervision is not None and supervision.on_started is not None:
        supervision.on_started()
    snapshot = TaskInstanceSnapshot(dag.dag_id, run_id, task_id, map_index, try_number,
                                    TIS.RUNNING)
    plugins.task_instance_state_changed(snapshot, expected_state, TIS.RUNNING)
    path = log_path(log_folder or base_log_folder(), dag.dag_id, run_id, task_id, map_index,
                    try_number)
    result.log_path = str(path)
    started = time.monotonic()
    ending = threading.Event()
    interval = supervision.heartbeat_interval if supervision is not None else None
    with capture_task_output(path, echo), _heartbeat(engine, row.id, try_number, interval,
                                                     ending):
        try:
            _run_and_finish(dag, row, DagRunSnapshot.from_row(run_row), try_number, engine,
                            plugins, result, started, supervision, ending)
        except Exception as err:
            # flow's own failure (the DAG lost the task, the XCom backend is misconfigured):
            # never leave the try running.
            log.exception("the task runner failed before the try could finish")
            if result.state == TIS.RUNNING:
                ending.set()
                result.duration = time.monotonic() - started
                _finish(engine, row, try_number, _Outcome(TIS.FAILED, err), None, result, None)
                plugins.task_instance_state_changed(
                    TaskInstanceSnapshot(dag.dag_id, run_id, task_id, map_index, try_number,
                                         result.state), TIS.RUNNING, result.state)
    return result


def _run_and_finish(dag: Any, row: TaskInstance, run: DagRunSnapshot, try_number: int,
                    engine: Engine, plugins: Any, result: TaskRunResult, started: float,
                    supervision: Supervision | None, ending: threading.Event) -> None:
    from flow.execution.xcom import get_xcom_backend
    from flow.secrets.connection import accessor_context

    task = dag.get_task(row.task_id)
    backend = get_xcom_backend(plugins)
    ti = RuntimeTaskInstance(ti_id=row.id, dag=dag, task=task, run_id=row.run_id,
                             map_index=row.map_index, try_number=try_number,
                             max_tries=row.max_tries, engine=engine, xcom_backend=backend)
    accessor = {"dag_id": dag.dag_id, "run_id": row.run_id, "task_id": row.task_id,
                "map_index": row.map_index, "try_number": try_number}
    context: dict[str, Any] = {}
    rendered: dict[str, Any] | None = None
    with accessor_context(accessor):
        log.info("running %r, try %d of %d", ti, try_number, row.max_tries + 1)
        try:
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
        result.duration = time.monotonic() - started
        ending.set()
        task_for_retry = context.get("task", task)
        _finish(engine, row, try_number, outcome, rendered, result, task_for_retry)
        snapshot = TaskInstanceSnapshot(row.dag_id, row.run_id, row.task_id, row.map_index,
                                        try_number, result.state)
        if result.state != TIS.RUNNING:
            plugins.task_instance_state_changed(snapshot, TIS.RUNNING, result.state)
        if context:
            context["exception"] = outcome.error
            _run_callbacks(task_for_retry, outcome.state, context)


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


@contextlib.contextmanager
def _heartbeat(engine: Engine, ti_id: int, try_number: int, interval: float | None,
               ending: threading.Event) -> Iterator[None]:
    """Update ``last_heartbeat_at`` every ``interval`` seconds from a thread while the block
    runs; stop the task (``SIGTERM`` to itself) if the try stopped running in the database
    before ``ending`` was set."""
    if interval is None or interval <= 0:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with engine.begin() as connection:
                    changed = connection.execute(
                        update(TaskInstance)
                        .where(TaskInstance.id == ti_id, TaskInstance.state == TIS.RUNNING,
                               TaskInstance.try_number == try_number)
                        .values(last_heartbeat_at=utcnow())).rowcount
            except Exception as err:  # a database hiccup: the next beat may succeed
                log.warning("heartbeat failed: %s", err)
                continue
            if not changed and not ending.is_set():
                log.error("try %d is no longer running in the database (its state was changed "
                          "elsewhere): stopping the task", try_number)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=beat, name="flow-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval)


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
def _session(engine: Engine) -> Iterator[Any]:
    from flow.store.session import session_scope

    with session_scope(engine) as session:
        yield session


def _start(engine: Engine, ti_id: int, try_number: int, expected_state: str) -> str | None:
    """Move ``expected_state -> running`` and record the try; a refusal message if not."""
    now = utcnow()
    hostname, pid = socket.gethostname(), os.getpid()
    try:
        with _session(engine) as session:
            changed = session.execute(
                update(TaskInstance)
                .where(TaskInstance.id == ti_id, TaskInstance.state == expected_state,
                       TaskInstance.try_number == try_number)
                .values(state=TIS.RUNNING, start_date=now, end_date=None, duration=None,
                        hostname=hostname, pid=pid, next_retry_at=None,
                        last_heartbeat_at=now, updated_at=now)
                .execution_options(synchronize_session=False)).rowcount
            if not changed:
                current = session.execute(select(TaskInstance.state, TaskInstance.try_number)
                                          .where(TaskInstance.id == ti_id)).one()
                session.rollback()
                return (f"refused to start try {try_number}: the task instance is "
                        f"{current.state or 'none'} at try {current.try_number}, not "
                        f"{expected_state} at try {try_number} (a late or duplicate start)")
            session.add(TaskInstanceTry(task_instance_id=ti_id, try_number=try_number,
                                        state=TIS.RUNNING, hostname=hostname, pid=pid,
                                        start_date=now))
    except IntegrityError:
        return f"refused to start try {try_number}: that try was already started"
    return None


def _finish(engine: Engine, row: TaskInstance, try_number: int, outcome: _Outcome,
            rendered: dict[str, Any] | None, result: TaskRunResult, task: Any) -> None:
    now = utcnow()
    error = None
    if outcome.error is not None:
        error = _redact(f"{type(outcome.error).__name__}: {outcome.error}")
    values: dict[str, Any] = {"state": outcome.state, "end_date": now,
                              "duration": result.duration, "updated_at": now}
    if rendered is not None:
        values["rendered_fields"] = rendered
    if outcome.state == TIS.UP_FOR_RETRY:
        values["next_retry_at"] = now + task.get_retry_delay(try_number)
        log.info("marking for retry %d of %d at %s", try_number + 1, row.max_tries + 1,
                 values["next_retry_at"].isoformat())
    else:
        log.info("marking task as %s", outcome.state.upper())
    with _session(engine) as session:
        changed = session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == row.id, TaskInstance.state == TIS.RUNNING,
                   TaskInstance.try_number == try_number)
            .values(**values).execution_options(synchronize_session=False)).rowcount
        session.execute(
            update(TaskInstanceTry)
            .where(TaskInstanceTry.task_instance_id == row.id,
                   TaskInstanceTry.try_number == try_number)
            .values(state=outcome.state, end_date=now, duration=result.duration, error=error)
            .execution_options(synchronize_session=False))
    if changed:
        result.state = outcome.state
    else:
        # Someone else (zombie detection, a user marking it) ended this try first: theirs wins.
        log.warning("the task instance was no longer running when this try ended; its state "
                    "was not changed to %s", outcome.state)
        result.state = TIS.RUNNING
        result.message = "state changed by someone else while running"
    result.error = error


def _redact(text: str) -> str:
    from flow.secrets.masking import redact

    return redact(text)


def echo_stream() -> TextIO:
    """The terminal, even while a task's output is being captured."""
    return sys.__stdout__ or sys.stdout


def warm_up(engine: Engine, plugins: Any) -> None:
    """Pay once, in a process that forks tries, what every try would pay again in its child:
    importing the modules a try uses and compiling its SQL statements (SQLAlchemy caches them
    per engine). Runs the try's statements against no row, in a rolled-back transaction."""
    import flow.authoring.macros
    import flow.authoring.templating
    import flow.scheduling.serialization
    from flow.execution.xcom import get_xcom_backend
    from flow.secrets.masking import masker

    flow.authoring.templating.make_environment(None).from_string("{{ ds }}")
    masker()
    backend = get_xcom_backend(plugins)
    nothing = -1
    with _session(engine) as session:
        session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == "", TaskInstance.run_id == "", TaskInstance.task_id == "",
            TaskInstance.map_index == nothing))
        session.scalar(select(DagRun).where(DagRun.dag_id == "", DagRun.run_id == ""))
        now = utcnow()
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == nothing, TaskInstance.state == TIS.QUEUED,
                   TaskInstance.try_number == nothing)
            .values(state=TIS.RUNNING, start_date=now, end_date=None, duration=None,
                    hostname="", pid=nothing, next_retry_at=None, last_heartbeat_at=now,
                    updated_at=now)
            .execution_options(synchronize_session=False))
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == nothing, TaskInstance.state == TIS.RUNNING,
                   TaskInstance.try_number == nothing)
            .values(state=TIS.SUCCESS, end_date=now, duration=0.0, updated_at=now,
                    rendered_fields={})
            .execution_options(synchronize_session=False))
        session.execute(
            update(TaskInstanceTry)
            .where(TaskInstanceTry.task_instance_id == nothing,
                   TaskInstanceTry.try_number == nothing)
            .values(state=TIS.SUCCESS, end_date=now, duration=0.0, error=None)
            .execution_options(synchronize_session=False))
        backend.clear(ti_id=nothing, session=session)
        session.rollback()
