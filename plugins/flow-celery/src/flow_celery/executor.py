"""The Celery executor: each try is a message on the Celery queue its task names.

``submit`` never blocks: it puts the workload in an outbox that a publisher thread sends to the
broker (as JSON, with a Celery task id derived from the task instance and the try number), at
most ``parallelism`` tries in flight at once. A workload the broker does not take (it is down,
or drops the connection) stays in the outbox and is sent again once the broker answers: nothing
submitted is lost. A watcher thread reads the tries' Celery results and reports TaskEvents:
``running`` when a worker starts the task, then the try's outcome as the worker's ``flow tasks
run`` code reported it, or ``lost`` when Celery says the worker died (``WorkerLostError``) or
the task was revoked. It also checks, every ``[celery] reconcile_interval``, that tries whose
result has not come are still queued or running in the metadata database, so a try that the
scheduler ended without its worker (zombie detection, queued timeout) stops being watched.

The same try always has the same Celery task id, so after a scheduler restart ``adopt`` finds
the tries already in Celery and watches them instead of sending them again.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow_celery.results import TaskMeta
from flow_celery.settings import CelerySettings, mask_url

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d1c2e-5b0a-4c55-9d1e-3c1b0f6a9a10")
# A try's outcomes as flow tasks run prints them, and what the executor reports for each.
_OUTCOMES = {"success": "success", "failed": "failed", "up_for_retry": "up_for_retry",
             "skipped": "skipped", "lost": "lost", "refused": "refused"}
_ENDED_IN_DATABASE = {"success", "failed", "up_for_retry", "skipped", "upstream_failed",
                      "removed"}
_RETRY_PUBLISH_AFTER = 1.0  # seconds between attempts while the broker does not answer
_PUSHED_SWEEP = 1.0  # seconds between full result reads when results are pushed


def celery_task_id(key: TaskKey, try_number: int, queue_prefix: str = "") -> str:
    """The Celery task id of try ``try_number`` of ``key``: the same in every process, so a
    duplicate publish is one Celery task and a restarted scheduler can find the try."""
    name = json.dumps([queue_prefix, key.dag_id, key.run_id, key.task_id, key.map_index,
                       try_number])
    return str(uuid.uuid5(_NAMESPACE, name))


@dataclass
class _InFlight:
    """A try sent to (or adopted from) Celery whose final result has not been read."""

    workload: TaskWorkload
    task_id: str
    since: float = field(default_factory=time.monotonic)
    started: bool = False


class CeleryExecutor(BaseExecutor):
    name: ClassVar[str] = "celery"

    def __init__(self, parallelism: int | None = None,
                 settings: CelerySettings | None = None) -> None:
        from flow.config import load_config

        config = load_config()
        super().__init__(parallelism=parallelism or int(config.get("core", "parallelism")))
        self.settings = settings or CelerySettings.load()
        self.log_folder = str(config.get("logging", "base_log_folder"))
        self._app: Any = None
        self._lock = threading.Condition(threading.RLock())
        self._outbox: collections.deque[TaskWorkload] = collections.deque()
        self._revokes: list[str] = []
        self._in_flight: dict[TaskKey, _InFlight] = {}
        self._by_task_id: dict[str, TaskKey] = {}
        self._threads: list[threading.Thread] = []
        self._results: Any = None
        self._results_failing = False
        self._stopping = False
        self._broker_down_since: float | None = None

    # ---------------------------------------------------------------------------- contract

    @property
    def app(self) -> Any:
        # Made under the lock: two threads importing Celery's lazy modules at once can fail.
        with self._lock:
            if self._app is None:
                from flow_celery.app import make_app

                self._app = make_app(self.settings)
            return self._app

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stopping = False
        self._result_source()  # made here, with the application, before the threads
        log.info("Celery executor: broker %s, results %s", mask_url(self.settings.broker_url),
                 mask_url(self.settings.backend_url()))
        for target, name in ((self._publish_loop, "celery-publisher"),
                             (self._watch_loop, "celery-watcher")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, workload: TaskWorkload) -> None:
        key, try_number = workload.key, workload.try_number
        with self._lock:
            current = self._in_flight.get(key)
            waiting = [w for w in self._outbox if w.key == key]
            if (current is not None and current.workload.try_number == try_number) or any(
                    w.try_number == try_number for w in waiting):
                duplicate = TaskEvent(key, "refused", try_number, {
                    "message": f"refused try {try_number}: it is already in flight through "
                               "this executor (a duplicate submit)"})
            else:
                # A newer try: the older one was ended elsewhere (zombie detection, a user).
                if current is not None:
                    self._forget(key)
                for older in waiting:
                    self._outbox.remove(older)
                self._outbox.append(workload)
                self._lock.notify_all()
                return
        self.report(duplicate)

    def cancel(self, key: TaskKey) -> None:
        with self._lock:
            for workload in list(self._outbox):
                if workload.key == key:
                    self._outbox.remove(workload)
                    cancelled = TaskEvent(key, "lost", workload.try_number,
                                          {"reason": "cancelled before it was sent to Celery"})
                    break
            else:
                current = self._in_flight.get(key)
                if current is not None:  # its final result still comes (REVOKED or the end)
                    self._revokes.append(current.task_id)
                    self._lock.notify_all()
                return
        self.report(cancelled)

    def adopt(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Watch the tries of ``keys`` that Celery has (started, finished, or running in the
        database); a queued try Celery has no state for is returned: the scheduler sends it
        again, and should the first message still arrive, the guarded start refuses it."""
        if not keys:
            return []
        rows = self._task_instances(keys)
        candidates = {key: rows[key] for key in keys
                      if key in rows and rows[key][0] in {"queued", "running"}}
        ids = {key: celery_task_id(key, try_number, self.settings.queue_prefix)
               for key, (_, try_number, _) in candidates.items()}
        metas = self._fetch(list(ids.values()))
        not_adopted = []
        for key in keys:
            if key not in candidates:
                not_adopted.append(key)
                continue
            state, try_number, fileloc = candidates[key]
            meta = metas.get(ids[key])
            if state == "queued" and (meta is None or meta.status == "PENDING"):
                not_adopted.append(key)
                continue
            workload = TaskWorkload(key.dag_id, key.run_id, key.task_id, try_number,
                                    fileloc or "", key.map_index)
            with self._lock:
                self._forget(key)
                self._in_flight[key] = _InFlight(workload, ids[key])
                self._by_task_id[ids[key]] = key
                self._lock.notify_all()
            if meta is not None:
                self._apply(ids[key], meta)
        log.info("adopted %d of %d tries from Celery", len(keys) - len(not_adopted), len(keys))
        return not_adopted

    def shutdown(self, wait: bool = True) -> None:
        """Stop watching. Tries in Celery go on: a restarted scheduler adopts them. With
        ``wait``, what is in the outbox is sent first (for up to ``[celery]
        operation_timeout`` seconds while the broker does not answer)."""
        deadline = time.monotonic() + self.settings.operation_timeout
        with self._lock:
            while wait and self._outbox and self._threads and time.monotonic() < deadline:
                self._lock.wait(0.05)
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self._app is not None:
            try:
                self._app.close()
            except Exception:  # a broken connection to close
                log.debug("closing the Celery application failed", exc_info=True)
        self.close_wakeup()

    # ---------------------------------------------------------------------------- sending

    def _publish_loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and not self._revokes and not (
                        self._outbox and len(self._in_flight) < self.parallelism):
                    self._lock.wait()
                if self._stopping:
                    return
                revokes, self._revokes = self._revokes, []
                batch: list[TaskWorkload] = []
                while self._outbox and len(self._in_flight) + len(batch) < self.parallelism:
                    batch.append(self._outbox.popleft())
            sent = self._send(batch)
            unsent = batch[len(sent):]
            unrevoked = self._revoke(revokes)
            if unsent or unrevoked:
                with self._lock:
                    self._outbox.extendleft(reversed(unsent))
                    self._revokes = unrevoked + self._revokes
                    retry_at = time.monotonic() + _RETRY_PUBLISH_AFTER
                    while not self._stopping and (left := retry_at - time.monotonic()) > 0:
                        self._lock.wait(left)

    def _revoke(self, task_ids: list[str]) -> list[str]:
        """Revoke (and stop, if running) each Celery task; returns those not yet revoked."""
        for index, task_id in enumerate(task_ids):
            try:
                self.app.control.revoke(task_id, terminate=True, signal="SIGTERM")
            except Exception as err:
                log.warning("could not revoke Celery task %s (%s); retrying", task_id, err)
                return task_ids[index:]
        return []

    def _send(self, batch: list[TaskWorkload]) -> list[TaskWorkload]:
        """Publish ``batch`` in order; returns those the broker took (a prefix)."""
        from flow_celery.app import TASK_NAME

        sent: list[TaskWorkload] = []
        if not batch:
            return sent
        app = self.app
        try:
            with app.producer_or_acquire() as producer:
                for workload in batch:
                    task_id = celery_task_id(workload.key, workload.try_number,
                                             self.settings.queue_prefix)
                    # Watched before it is sent: its result can come before this returns.
                    with self._lock:
                        self._in_flight[workload.key] = _InFlight(workload, task_id)
                        self._by_task_id[task_id] = workload.key
                        self._lock.notify_all()
                    message = app.amqp.create_task_message(task_id, TASK_NAME,
                                                           [workload.to_json()], {})
                    app.amqp.send_task_message(
                        producer, TASK_NAME, message,
                        queue=self.settings.queue(workload.queue), retry=True,
                        retry_policy={"max_retries": 1, "interval_start": 0,
                                      "interval_step": 0, "interval_max": 0},
                        timeout=self.settings.operation_timeout)
                    sent.append(workload)
        except Exception as err:
            with self._lock:
                for workload in batch[len(sent):]:
                    self._forget(workload.key)
            if self._broker_down_since is None:
                self._broker_down_since = time.monotonic()
                log.error("the Celery broker %s did not take %d tries (%s: %s); they stay "
                          "queued here and are sent again every %.0f s",
                          mask_url(self.settings.broker_url), len(batch) - len(sent),
                          type(err).__name__, err, _RETRY_PUBLISH_AFTER)
            return sent
        if self._broker_down_since is not None:
            log.warning("the Celery broker answers again after %.0f s",
                        time.monotonic() - self._broker_down_since)
            self._broker_down_since = None
        return sent

    # ---------------------------------------------------------------------------- watching

    def _result_source(self) -> Any:
        with self._lock:
            if self._results is None:
                from flow_celery.results import result_source

                self._results = result_source(self.app)
            return self._results

    def _watch_loop(self) -> None:
        source = self._result_source()
        interval = self.settings.result_poll_interval
        next_sweep = next_reconcile = 0.0
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    idle = not self._in_flight
                    if idle and not source.pushes:
                        self._lock.wait(1.0)
                        continue
                for task_id, meta in source.wait(1.0 if source.pushes else interval):
                    self._apply(task_id, meta)
                now = time.monotonic()
                if idle:
                    continue
                if now >= next_sweep:
                    next_sweep = now + (_PUSHED_SWEEP if source.pushes else 0.0)
                    with self._lock:
                        ids = list(self._by_task_id)
                    for task_id, meta in self._fetch(ids, source).items():
                        self._apply(task_id, meta)
                if now >= next_reconcile:
                    next_reconcile = now + self.settings.reconcile_interval
                    self._reconcile()
        finally:
            with self._lock:
                self._results = None
            source.close()

    def _fetch(self, task_ids: list[str], source: Any = None) -> dict[str, TaskMeta]:
        try:
            found: dict[str, TaskMeta] = (source or self._result_source()).fetch(task_ids)
        except Exception as err:  # the backend is away: the next look may succeed
            if not self._results_failing:
                log.warning("reading %d Celery results failed: %s; trying again",
                            len(task_ids), err)
            self._results_failing = True
            return {}
        if self._results_failing:
            log.warning("reading Celery results works again")
            self._results_failing = False
        return found

    def _apply(self, task_id: str, meta: TaskMeta) -> None:
        with self._lock:
            key = self._by_task_id.get(task_id)
            flight = self._in_flight.get(key) if key is not None else None
            if key is None or flight is None or flight.task_id != task_id:
                return
            try_number = flight.workload.try_number
            if meta.status == "STARTED":
                if flight.started:
                    return
                flight.started = True
                event = TaskEvent(key, "running", try_number, {"executor": "celery"})
            elif meta.status in {"SUCCESS", "FAILURE", "REVOKED"}:
                self._forget(key)
                event = _final_event(key, try_number, meta)
            else:
                return
        if event.state == "lost" and "WorkerLostError" in str(event.info.get("reason")):
            self._note_in_log(flight.workload, str(event.info["reason"]))
        self.report(event)

    def _reconcile(self) -> None:
        """Stop watching tries the metadata database no longer has queued or running at
        their try number (ended by zombie detection, a queued timeout or a user), reporting
        how they ended."""
        cutoff = time.monotonic() - self.settings.reconcile_interval
        with self._lock:
            old = {key: flight for key, flight in self._in_flight.items()
                   if flight.since < cutoff}
        if not old:
            return
        try:
            rows = self._task_instances(list(old))
        except Exception as err:
            log.warning("checking %d tries in the metadata database failed: %s", len(old), err)
            return
        events = []
        with self._lock:
            for key, flight in old.items():
                state, try_number, _ = rows.get(key, (None, None, None))
                wanted = flight.workload.try_number
                if self._in_flight.get(key) is not flight or (
                        try_number == wanted and state in {"queued", "running"}):
                    continue
                self._forget(key)
                if try_number == wanted and state in _ENDED_IN_DATABASE:
                    info = {"message": "the outcome was read from the metadata database: no "
                                       "Celery result came"}
                    events.append(TaskEvent(key, state if state in _OUTCOMES else "failed",
                                            wanted, info))
                else:
                    events.append(TaskEvent(key, "lost", wanted, {
                        "reason": f"the metadata database no longer has try {wanted} queued "
                                  f"or running (state {state}, try {try_number})"}))
        if events:
            self.report(*events)

    def _forget(self, key: TaskKey) -> None:
        """Stop watching ``key`` (the caller holds the lock)."""
        flight = self._in_flight.pop(key, None)
        if flight is not None:
            self._by_task_id.pop(flight.task_id, None)
            self._lock.notify_all()

    def _task_instances(self, keys: list[TaskKey]) -> dict[TaskKey, tuple[Any, int, Any]]:
        """key -> (state, try number, DAG file) from the metadata database."""
        from sqlalchemy import select, tuple_

        from flow.plugin_support import metadata_engine
        from flow.store.models import DagModel, TaskInstance
        from flow.store.session import session_scope

        found: dict[TaskKey, tuple[Any, int, Any]] = {}
        columns = (TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id,
                   TaskInstance.map_index)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            with session_scope(metadata_engine()) as session:
                rows = session.execute(
                    select(*columns, TaskInstance.state, TaskInstance.try_number,
                           DagModel.fileloc)
                    .outerjoin(DagModel, DagModel.dag_id == TaskInstance.dag_id)
                    .where(tuple_(*columns).in_([(k.dag_id, k.run_id, k.task_id, k.map_index)
                                                 for k in chunk]))).all()
            for dag_id, run_id, task_id, map_index, state, try_number, fileloc in rows:
                found[TaskKey(dag_id, run_id, task_id, map_index)] = (
                    None if state is None else str(state), int(try_number), fileloc)
        return found

    def _note_in_log(self, workload: TaskWorkload, reason: str) -> None:
        """Say in the try's log that its worker was lost: the try itself could not."""
        from flow.execution.supervisor import append_to_try_log

        try:
            append_to_try_log(self.log_folder, workload, reason)
        except OSError as err:
            log.warning("could not write to the log of %s try %d: %s", workload.key,
                        workload.try_number, err)


def _final_event(key: TaskKey, try_number: int, meta: TaskMeta) -> TaskEvent:
    if meta.status == "SUCCESS":
        outcome = meta.result if isinstance(meta.result, dict) else {}
        state = _OUTCOMES.get(str(outcome.get("state")), "failed")
        info = {name: outcome[name] for name in ("message", "error", "log_path")
                if outcome.get(name)}
        if state == "lost":
            info.setdefault("reason", info.get("message") or "the worker lost the try")
        return TaskEvent(key, state, try_number, info)
    if meta.status == "REVOKED":
        return TaskEvent(key, "lost", try_number,
                         {"reason": "the Celery task was revoked (cancelled)"})
    error = meta.result if isinstance(meta.result, dict) else {}
    kind = str(error.get("exc_type") or "an error")
    detail = error.get("exc_message")
    if isinstance(detail, list | tuple):
        detail = " ".join(str(part) for part in detail)
    if kind == "WorkerLostError":
        reason = (f"the Celery worker process running try {try_number} was lost "
                  f"(WorkerLostError: {detail}); the try did not report its end")
    else:
        reason = f"the Celery task failed before the try could report: {kind}: {detail}"
    return TaskEvent(key, "lost", try_number, {"reason": reason})
