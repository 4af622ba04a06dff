"""The scheduler: DAG runs from timetables and backfills, ready task instances to the executor.

One loop iteration: create due runs (:mod:`flow.scheduling.runs`), start queued runs under
``max_active_runs``, apply the executor's events, evaluate running runs
(:mod:`flow.scheduling.planning`) and queue what is ready (:mod:`flow.scheduling.queueing`) in one
transaction, then submit what was queued. The loop
sleeps only when an iteration did nothing, and then waits on the executor's events and on its
wake-up socket (:mod:`flow.scheduling.wakeup`), so a finished task or a user's trigger on this
machine wakes it at once (it looks anyway every ``[scheduler] idle_sleep``).

Also: a heartbeat in the ``job`` table (:mod:`flow.scheduling.jobs`), the DAG processor in a
thread (re-parses changed files every ``[scheduler] dag_dir_list_interval``), zombie detection
(a running try whose heartbeat is older than ``task_heartbeat_timeout`` is ended failed or
up_for_retry with the reason in its log), queued-timeout handling, and adoption of the tries
of schedulers that died (``executor.adopt``; those not adopted are re-queued if they never
started, and left to their heartbeat if they did).
"""

from __future__ import annotations

import gc
import logging
import signal
import subprocess
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from flow.execution.runtime import TaskInstanceSnapshot
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow.scheduling import runs
from flow.scheduling.callbacks import start_dag_callback
from flow.scheduling.crashpoints import crash_point
from flow.scheduling.dagruns import rowcount
from flow.scheduling.jobs import SchedulerJob, live_scheduler_ids
from flow.scheduling.pools import ensure_default_pool
from flow.scheduling.queueing import QueuedTry, queue_ready
from flow.scheduling.runs import Evaluation
from flow.scheduling.wakeup import Waker
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagModel, TaskInstance
from flow.store.session import session_scope
from flow.utils.timezone import utcnow

log = logging.getLogger(__name__)

# Seconds between looks for due runs and backfill progress: a run becomes due at most this late.
RUN_CREATION_INTERVAL = 2.0
MAX_LOSSES = 3  # a try the executor keeps losing before it starts is failed, not retried forever
# Seconds between attempts while the metadata database fails: doubling from the first to the most.
DATABASE_RETRY_FIRST, DATABASE_RETRY_MAX = 0.2, 10.0
FINAL_EVENTS = frozenset({TIS.SUCCESS, TIS.FAILED, TIS.UP_FOR_RETRY, TIS.SKIPPED, "refused",
                          "lost"})


class Scheduler:
    """``Scheduler(...).run()``; ``stop()`` (or SIGINT/SIGTERM) ends it cleanly."""

    def __init__(self, *, engine: Engine | None = None, config: Any = None, plugins: Any = None,
                 executor: Any = None, num_runs: int | None = None, until_idle: bool = False,
                 process_dags: bool = True) -> None:
        from flow.config import load_config
        from flow.plugins import current
        from flow.store.session import get_engine

        self.config = config or load_config()
        self.engine = engine or get_engine()
        self.plugins = plugins or current()
        self.executor_name = str(self.config.get("core", "executor"))
        self.executor = executor
        self.num_runs = num_runs
        self.until_idle = until_idle
        self.process_dags = process_dags
        self.parallelism = int(self.config.get("core", "parallelism"))
        self.idle_sleep = float(self.config.get("scheduler", "idle_sleep"))
        setting = self.config.get
        self.job = SchedulerJob(self.engine, executor=self.executor_name,
                                health_threshold=float(setting("scheduler", "health_threshold")))
        self.heartbeat_interval = float(setting("scheduler", "heartbeat_interval"))
        self.parse_interval = float(setting("scheduler", "dag_dir_list_interval"))
        self.task_heartbeat_timeout = float(setting("scheduler", "task_heartbeat_timeout"))
        self.task_queued_timeout = float(setting("scheduler", "task_queued_timeout"))
        self.max_runs_per_loop = int(setting("scheduler", "max_dagruns_per_loop"))
        self.log_folder = str(setting("logging", "base_log_folder"))
        self.in_flight: dict[TaskKey, int] = {}
        self.runs = runs.RunManager(self.engine, self.plugins, self.max_runs_per_loop)
        self._stop = threading.Event()
        self._due: dict[str, float] = {}
        self._warned_pools: set[str] = set()
        self._callbacks: list[subprocess.Popen[bytes]] = []
        self._losses: dict[TaskKey, int] = {}
        # key -> (try number, reason): a started try the executor lost, for its zombie reason.
        self._loss_reasons: dict[TaskKey, tuple[int, str]] = {}
        self._processor_thread: threading.Thread | None = None
        self._waker: Waker | None = None
        self._started = False  # flow_component_started was called: stopped is owed
        self.loops = 0

    # ------------------------------------------------------------------------- lifecycle

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        """Run until stopped, ``num_runs`` loops, or (``until_idle``) no run is left; returns
        the number of loops."""
        from flow.store.migrate import ensure_current

        ensure_current(self.engine)
        job_id = self.job.start()
        self._waker = Waker(job_id)
        log.info("scheduler job %d started (executor %s)", job_id, self.executor_name)
        try:
            self.plugins.component_started("scheduler")
            self._started = True
            with session_scope(self.engine) as session:
                ensure_default_pool(session)
            self._start_executor()
            if self.process_dags:
                self._start_processor()
            self._adopt()
            # What is loaded by now (flow, SQLAlchemy's mappers, the plugins, the DAGs read so
            # far) lives as long as the scheduler: keep the collector's full passes off it.
            gc.freeze()
            self._loop()
        finally:
            self._shutdown()
        return self.loops

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)

    def _start_executor(self) -> None:
        if self.executor is None:
            cls = self.plugins.executor(self.executor_name).load()
            # A plugin's executor logs under its own package; its lines (a broker outage, an
            # adoption) belong in the scheduler's log at the scheduler's level.
            package = cls.__module__.partition(".")[0]
            if package != "flow":
                logging.getLogger(package).setLevel(log.getEffectiveLevel())
            self.executor = cls(parallelism=self.parallelism)
        self.executor.start()

    def _start_processor(self) -> None:
        from flow.scheduling.processor import DagProcessor

        processor = DagProcessor(engine=self.engine, config=self.config)
        first = threading.Event()

        def work() -> None:
            while not self._stop.is_set():
                try:
                    result = processor.process()
                    if result.parsed:
                        log.info("parsed %d DAG file(s) in %.2f s", len(result.parsed),
                                 result.duration)
                except Exception:
                    log.exception("the DAG processor failed; retrying in %.0f s",
                                  self.parse_interval)
                first.set()
                self._stop.wait(self.parse_interval)

        self._processor_thread = threading.Thread(target=work, name="dag-processor",
                                                  daemon=True)
        self._processor_thread.start()
        # The first parse before the first loop: a fresh scheduler knows its DAGs at once.
        first.wait(timeout=max(30.0, float(self.config.get("core",
                                                           "dag_file_processor_timeout")) * 2))

    def _shutdown(self) -> None:
        self._stop.set()
        if self.executor is not None:
            try:
                self.executor.shutdown(wait=True)
                self._apply_events()
            except Exception:
                log.exception("the executor failed to shut down cleanly")
        if self._processor_thread is not None:
            self._processor_thread.join(timeout=10)
        for child in self._callbacks:
            child.wait(timeout=10)
        self.job.end()
        if self._waker is not None:
            self._waker.close()
        if self._started:
            self.plugins.component_stopped("scheduler")
        log.info("scheduler job %s ended", self.job.id)

    # ------------------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self.loops += 1
            try:
                busy = self._iteration()
                failures = 0
            except (OperationalError, InterfaceError) as err:
                # The server dropped the connection (a restart, a failover) or is unreachable:
                # nothing is lost (each step is a transaction, and a try queued but never
                # handed out is handed out again after task_queued_timeout), so wait and go on.
                failures += 1
                self._after_database_error(err, failures)
                continue
            if self.num_runs is not None and self.loops >= self.num_runs:
                return
            if self.until_idle and not self.in_flight and not self.runs.has_unfinished():
                return
            if not busy:
                self._sleep()

    def _iteration(self) -> bool:
        now = time.monotonic()
        self._periodic("heartbeat", self.heartbeat_interval, self.job.heartbeat)
        self._periodic("create_runs", RUN_CREATION_INTERVAL, self._create_runs)
        self._periodic("backfills", RUN_CREATION_INTERVAL, self.runs.advance_backfills)
        self._periodic("zombies", max(1.0, self.task_heartbeat_timeout / 4), self._find_zombies)
        self._periodic("queued_timeout", max(1.0, self.task_queued_timeout / 4),
                       self._requeue_stuck)
        self._periodic("adopt", self.job.health_threshold, self._adopt)
        self._periodic("reap", 5.0, self._reap_callbacks)
        # Queued runs start when one may have appeared or a slot opened: after run creation,
        # a wake-up, a finished run, and at least every idle_sleep.
        busy = 0
        if self._due.get("start_runs", 0.0) <= now:
            self._due["start_runs"] = now + self.idle_sleep
            busy = self.runs.start_queued_runs()
        ended = self._apply_events()
        events = len(ended)
        # A try that started changes nothing to evaluate; one that ended may, and it freed a
        # slot (parallelism, a pool, max_active_tasks) that a scheduled one may take.
        evaluate = (busy > 0 or (events > 0 and self.runs.must_evaluate(ended))
                    or self._due.get("evaluate", 0.0) <= time.monotonic())
        evaluated, submitted = self._evaluate_and_queue(evaluate, events > 0)
        busy = bool(busy or events or evaluated or submitted)
        log.debug("loop %d: %d events, %d scheduled, %d submitted in %.1f ms", self.loops,
                  events, evaluated, submitted, (time.monotonic() - now) * 1000)
        return busy

    def _after_database_error(self, err: Exception, failures: int) -> None:
        pause = min(DATABASE_RETRY_MAX, DATABASE_RETRY_FIRST * 2 ** (failures - 1))
        first_line = str(getattr(err, "orig", err)).strip().splitlines()[:1]
        log.error("the metadata database failed (%s: %s); the scheduler goes on in %.1f s "
                  "(%d failure(s) in a row)", type(err).__name__,
                  first_line[0] if first_line else "", pause, failures)
        # What was being done is done again: evaluate, start and queue at the next loop.
        self.runs.waiting = True
        self._due["evaluate"] = self._due["start_runs"] = 0.0
        self._stop.wait(pause)

    def _create_runs(self) -> None:
        if self.runs.create_due_runs():
            self._due["start_runs"] = 0.0
        # The executor may load the unpaused DAGs' files ahead of their first tries.
        for fileloc, dag_hash in self.runs.dag_files.values():
            self.executor.prepare(fileloc, dag_hash)

    def _periodic(self, name: str, interval: float, action: Any) -> None:
        now = time.monotonic()
        if self._due.get(name, 0.0) <= now:
            self._due[name] = now + interval
            try:
                action()
            except Exception:
                log.exception("scheduler step %s failed; it runs again in %.0f s", name,
                              interval)

    def _sleep(self) -> None:
        """Until an executor event, a wake-up, or the next periodic step is due."""
        timeout = self._sleep_time()
        if self._waker is None:
            self.executor.wait_for_events(timeout)
            return
        if self.executor.has_events():
            return
        if self._waker.wait(self.executor.fileno(), timeout):
            # A trigger queued a run, or an unpause made one due.
            self._due["create_runs"] = self._due["start_runs"] = 0.0

    def _sleep_time(self) -> float:
        now = time.monotonic()
        soonest = min(self._due.values(), default=now + self.idle_sleep)
        return max(0.0, min(self.idle_sleep, soonest - now))

    def _evaluate_and_queue(self, evaluate: bool, events: bool) -> tuple[int, int]:
        """Evaluate the running runs (when asked) and queue what may run now, in one
        transaction: a try that became ready is queued by the commit that made it ready (one
        commit, not two, between a try's end and its downstream's start). Returns the task
        instances and runs the evaluation changed, and the tries submitted."""
        slots = self.parallelism - len(self.in_flight)
        if not evaluate and (slots <= 0 or not (self.runs.waiting or events)):
            return 0, 0
        evaluation: Evaluation | None = None
        queued: list[QueuedTry] = []
        queueing = False
        with session_scope(self.engine) as session:
            if evaluate:
                self._due["evaluate"] = time.monotonic() + self.idle_sleep
                evaluation = self.runs.evaluate(session)
            if events:  # an ended try freed a slot that a scheduled one may take
                self.runs.waiting = True
            if slots > 0 and self.runs.waiting:
                queueing = True
                queued = queue_ready(session, job_id=self.job.id, executor_slots=slots,
                                     now=utcnow(), warned_pools=self._warned_pools)
        evaluated = self._evaluated(evaluation) if evaluation is not None else 0
        if queued:
            crash_point("tries_queued")
            self._announce_queued(queued)
        for item in queued:
            self._submit(item)
        if queued:
            crash_point("tries_submitted")
        if queueing and len(queued) < slots:
            # Nothing else may run now; the next evaluation (a try ended, a retry came due)
            # says when to look again.
            self.runs.waiting = False
        return evaluated, len(queued)

    def _evaluated(self, evaluation: Evaluation) -> int:
        """After the evaluation committed: announce it, cancel, start the runs' callbacks."""
        evaluation.committed()
        for ti in evaluation.cancel:
            self.executor.cancel(TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index))
        if evaluation.finished:  # a slot under max_active_runs may have opened
            self._due["start_runs"] = 0.0
        for run, state, reason, fileloc, wants_callback in evaluation.finished:
            log.info("DAG run %s of %s is %s: %s", run.run_id, run.dag_id, state, reason)
            if wants_callback:
                self._callbacks.append(start_dag_callback(fileloc, run.dag_id, run.run_id,
                                                          state, reason))
        return evaluation.scheduled + len(evaluation.finished)

    def _announce_queued(self, queued: list[QueuedTry]) -> None:
        if not self.plugins.has_listeners("flow_task_instance_state_changed"):
            return
        for item in queued:
            self.plugins.task_instance_state_changed(
                TaskInstanceSnapshot(item.dag_id, item.run_id, item.task_id, item.map_index,
                                     item.try_number, TIS.QUEUED), item.previous, TIS.QUEUED)

    def _submit(self, item: QueuedTry) -> None:
        workload = TaskWorkload(dag_id=item.dag_id, run_id=item.run_id, task_id=item.task_id,
                                try_number=item.try_number, dag_file=item.fileloc,
                                map_index=item.map_index, dag_hash=item.dag_hash,
                                queue=item.queue, pool=item.pool)
        self.in_flight[workload.key] = workload.try_number
        self.executor.submit(workload)

    # ------------------------------------------------------------------------------ events

    def _apply_events(self) -> list[tuple[str, str, str, str]]:
        """Apply the executor's events; returns the tries they ended, (dag_id, run_id,
        task_id, state) each."""
        events: list[TaskEvent] = self.executor.events()
        final = []
        for event in events:
            if event.state not in FINAL_EVENTS:
                continue
            final.append((event.key.dag_id, event.key.run_id, event.key.task_id, event.state))
            if event.state == TIS.SUCCESS and event.info.get("branch_decision") is False \
                    and event.key.map_index == -1:
                self.runs.note_no_branch_decision(event.key.dag_id, event.key.run_id,
                                                  event.key.task_id, event.try_number)
            if self.in_flight.get(event.key) == event.try_number:
                del self.in_flight[event.key]
        # The database work last: if it fails, every event was still taken into account (a
        # lost try left queued is handed out again after task_queued_timeout).
        for event in events:
            if event.state == "lost":
                self._handle_lost(event)
        if events:
            crash_point("events_applied")
        return final

    def _handle_lost(self, event: TaskEvent) -> None:
        """The executor lost a try: if it never started, hand the same try out again (a start
        is guarded, so it can never run twice); if it started, its heartbeat decides."""
        key = event.key
        with session_scope(self.engine) as session:
            row = session.execute(select(TaskInstance, DagModel.fileloc, DagModel.dag_hash)
                                  .join(DagModel, DagModel.dag_id == TaskInstance.dag_id)
                                  .where(*_key_filter(key))).first()
        if row is not None and row[0].state == TIS.RUNNING and \
                row[0].try_number == event.try_number and event.info.get("reason"):
            # Its heartbeat decides; the zombie's reason then says how it was lost.
            self._loss_reasons[key] = (event.try_number, str(event.info["reason"]))
        if row is None or row[0].state != TIS.QUEUED or row[0].try_number != event.try_number:
            return
        ti = row[0]
        losses = self._losses[key] = self._losses.get(key, 0) + 1
        reason = event.info.get("reason") or event.info.get("message") or "no reason given"
        if losses > MAX_LOSSES:
            from flow.execution.supervisor import fail_unstartable

            fail_unstartable(self.engine, TaskWorkload(ti.dag_id, ti.run_id, ti.task_id,
                                                       ti.try_number, row[1], ti.map_index),
                             f"the executor lost this try {losses} times before it started "
                             f"(last: {reason}); giving up", self.log_folder, self.plugins)
            return
        log.warning("executor lost %s try %d before it started (%s); queueing it again", key,
                    event.try_number, reason)
        self._submit(QueuedTry(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number,
                               row[1], row[2], ti.queue, ti.pool))

    # ----------------------------------------------------------------- zombies and adoption

    def _find_zombies(self) -> None:
        from flow.execution.supervisor import append_to_try_log, end_dead_try

        cutoff = utcnow() - timedelta(seconds=self.task_heartbeat_timeout)
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(TaskInstance, DagModel.fileloc)
                .join(DagModel, DagModel.dag_id == TaskInstance.dag_id)
                .where(TaskInstance.state == TIS.RUNNING,
                       or_(TaskInstance.last_heartbeat_at < cutoff,
                           and_(TaskInstance.last_heartbeat_at.is_(None),
                                TaskInstance.start_date < cutoff)))).all()
        for ti, fileloc in rows:
            reason = (f"zombie: no heartbeat from the task's process (host {ti.hostname}, pid "
                      f"{ti.pid}) for more than {self.task_heartbeat_timeout:g} s "
                      f"([scheduler] task_heartbeat_timeout); its process died without "
                      f"reporting")
            key = TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
            lost = self._loss_reasons.pop(key, None)
            if lost is not None and lost[0] == ti.try_number:
                reason = f"{lost[1]}; {reason}"
            workload = TaskWorkload(ti.dag_id, ti.run_id, ti.task_id, ti.try_number, fileloc,
                                    ti.map_index)
            state = end_dead_try(self.engine, workload, reason,
                                 self.runs.retry_policy(ti.dag_id, ti.task_id), self.plugins)
            if state in (TIS.FAILED, TIS.UP_FOR_RETRY):
                log.warning("%s try %d: %s -> %s", workload.key, ti.try_number, reason, state)
                append_to_try_log(self.log_folder, workload, reason)
                self.in_flight.pop(workload.key, None)

    def _requeue_stuck(self) -> None:
        """A try queued longer than ``task_queued_timeout``: hand it out again if its executor
        is gone; fail it (reason in its log) if our own executor sat on it."""
        from flow.execution.supervisor import fail_unstartable

        cutoff = utcnow() - timedelta(seconds=self.task_queued_timeout)
        with session_scope(self.engine) as session:
            rows = session.execute(select(TaskInstance, DagModel.fileloc, DagModel.dag_hash)
                                   .join(DagModel, DagModel.dag_id == TaskInstance.dag_id)
                                   .where(TaskInstance.state == TIS.QUEUED,
                                          TaskInstance.queued_at < cutoff)).all()
        for ti, fileloc, dag_hash in rows:
            key = TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
            item = QueuedTry(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number,
                             fileloc, dag_hash, ti.queue, ti.pool)
            if self.in_flight.get(key) == ti.try_number:
                reason = (f"queued for more than {self.task_queued_timeout:g} s "
                          "([scheduler] task_queued_timeout) without starting")
                workload = TaskWorkload(ti.dag_id, ti.run_id, ti.task_id, ti.try_number,
                                        fileloc, ti.map_index)
                if fail_unstartable(self.engine, workload, reason, self.log_folder,
                                    self.plugins):
                    self.executor.cancel(key)
                    del self.in_flight[key]
                continue
            if self._claim(ti, TIS.QUEUED):
                self._submit(item)

    def _claim(self, ti: TaskInstance, state: str | None) -> bool:
        with session_scope(self.engine) as session:
            return bool(rowcount(session.execute(
                update(TaskInstance)
                .where(TaskInstance.id == ti.id, TaskInstance.state == state,
                       TaskInstance.try_number == ti.try_number)
                .values(queued_by_job_id=self.job.id, queued_at=utcnow())
                .execution_options(synchronize_session=False))))

    def _adopt(self) -> None:
        """Take over the queued and running tries of schedulers that died."""
        live = live_scheduler_ids(self.engine, self.job.health_threshold) | {self.job.id}
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(TaskInstance, DagModel.fileloc, DagModel.dag_hash)
                .join(DagModel, DagModel.dag_id == TaskInstance.dag_id)
                .where(TaskInstance.state.in_([TIS.QUEUED, TIS.RUNNING]),
                       TaskInstance.queued_by_job_id.is_not(None),
                       TaskInstance.queued_by_job_id.not_in(sorted(i for i in live if i)))).all()
        if not rows:
            return
        keys = [TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index) for ti, _, _ in rows]
        not_adopted = set(self.executor.adopt(keys))
        for (ti, fileloc, dag_hash), key in zip(rows, keys, strict=True):
            if not self._claim(ti, ti.state):
                continue
            crash_point("tries_adopted")
            if key not in not_adopted:
                self.in_flight[key] = ti.try_number
            elif ti.state == TIS.QUEUED:
                log.info("re-queueing %s try %d queued by a scheduler that died", key,
                         ti.try_number)
                self._submit(QueuedTry(ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                                       ti.try_number, fileloc, dag_hash, ti.queue, ti.pool))
            # A running try that was not adopted is left to its heartbeat (zombie detection).

    def _reap_callbacks(self) -> None:
        self._callbacks = [child for child in self._callbacks if child.poll() is None]


def _key_filter(key: TaskKey) -> list[Any]:
    return [TaskInstance.dag_id == key.dag_id, TaskInstance.run_id == key.run_id,
            TaskInstance.task_id == key.task_id, TaskInstance.map_index == key.map_index]
