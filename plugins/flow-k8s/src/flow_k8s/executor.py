"""The KubernetesExecutor: one pod per try of a task instance.

``submit`` only queues the workload. Three threads do the rest:

* the *creator* makes pods, up to ``parallelism`` at a time, in batches of
  ``[kubernetes] worker_pods_creation_batch_size``, and gives up on pods stuck Pending (past
  ``worker_pods_pending_timeout``, or ``image_pull_grace`` after an image pull error);
* the *watcher* (:class:`~flow_k8s.watcher.PodWatcher`) lists and watches the pods labelled
  with this executor's scheduler id and turns their phases into events: ``Running`` is reported
  as ``running`` at once, an ended pod goes to
* the *finisher*, which reads what the try became in the metadata database (ending it there
  with the Kubernetes reason when the pod died before the try could), reports it, and deletes
  the pod (``delete_worker_pods``; ``delete_worker_pods_on_failure`` for failed ones).

After a scheduler restart, ``adopt`` takes over the pods of the keys it is given (relabelling them
with the new scheduler id) and ``start`` deletes orphans: worker pods of other scheduler ids whose
try is no longer queued or running. ``shutdown`` stops the threads and leaves running pods for
the next scheduler to adopt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flow.execution.executor import BaseExecutor
from flow.execution.workload import TaskEvent, TaskKey, TaskWorkload
from flow_k8s import pod as pods_
from flow_k8s import status as pod_status
from flow_k8s import tries
from flow_k8s.client import Pods, api_client, describe_error, namespace_of, status_of
from flow_k8s.settings import KubernetesConfigError, KubernetesSettings
from flow_k8s.watcher import PodWatcher

log = logging.getLogger(__name__)

EXIT_REFUSED = 3  # `flow tasks run`: the try was not queued for it (a late or duplicate start)
# How long a deleted pod's try may take to write its own outcome before it is ended here.
SETTLE_SECONDS = 5.0
# How long a finished pod's name is remembered, so a late event about it is not a new pod.
FORGET_AFTER = 600.0


@dataclass
class Tracked:
    """A pod this executor is responsible for."""

    workload: TaskWorkload
    name: str
    created: float = field(default_factory=time.monotonic)
    running_reported: bool = False
    finishing: bool = False
    start_failure_since: float | None = None
    last_pending_reason: str = ""


class KubernetesExecutor(BaseExecutor):
    name = "kubernetes"

    def __init__(self, parallelism: int = 32, settings: KubernetesSettings | None = None
                 ) -> None:
        super().__init__(parallelism=max(1, parallelism))
        self.settings = settings or KubernetesSettings.load()
        self.scheduler_id = self.settings.scheduler_id or f"flow-{uuid.uuid4().hex[:12]}"
        self.selector = f"{pods_.COMPONENT_LABEL}={pods_.WORKER}," \
                        f"{pods_.SCHEDULER_LABEL}={pods_.label_value(self.scheduler_id)}"
        self._lock = threading.Condition()
        self._pending: deque[TaskWorkload] = deque()
        self._tracked: dict[str, Tracked] = {}
        self._finished: dict[str, float] = {}
        self._finishing: queue.Queue[tuple[Tracked, dict[str, Any], str] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._configs = tries.ExecutorConfigs()
        self._template: dict[str, Any] | None = None
        self.pods: Pods | None = None
        self.watcher: PodWatcher | None = None

    # ------------------------------------------------------------------------- the contract

    def start(self) -> None:
        if self._threads:
            return
        self._template = pods_.load_template(self.settings)
        self.pods = Pods(api_client(self.settings), namespace_of(self.settings),
                         self.settings.api_retries)
        self.watcher = PodWatcher(self.pods, self.selector, self._observe,
                                  timeout_seconds=self.settings.watch_timeout)
        for target, name in ((self._create_loop, "creator"), (self.watcher.run, "watcher"),
                             (self._finish_loop, "finisher")):
            thread = threading.Thread(target=target, name=f"k8s-executor-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, workload: TaskWorkload) -> None:
        name = pods_.pod_name("flow", workload.key, workload.try_number)
        with self._lock:
            duplicate = name in self._tracked or any(
                w.key == workload.key and w.try_number == workload.try_number
                for w in self._pending)
            if not duplicate:
                self._pending.append(workload)
                self._lock.notify_all()
        if duplicate:
            self.report(TaskEvent(workload.key, "refused", workload.try_number,
                                  {"reason": f"pod {name} already runs this try"}))

    def cancel(self, key: TaskKey) -> None:
        with self._lock:
            self._pending = deque(w for w in self._pending if w.key != key)
            names = [t.name for t in self._tracked.values() if t.workload.key == key]
        for name in names:
            self._delete(name, "cancelled")

    def adopt(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Take over the newest pod of each key (relabelled with this executor's scheduler id);
        return the keys that have none."""
        assert self.pods is not None, "start() the executor before adopt()"
        wanted = set(keys)
        items, _ = self.pods.list(f"{pods_.COMPONENT_LABEL}={pods_.WORKER}")
        newest: dict[TaskKey, tuple[int, dict[str, Any]]] = {}
        for item in items:
            found = pods_.key_of(item)
            if found and found[0] in wanted and not pod_status.is_deleting(item) \
                    and found[1] > newest.get(found[0], (0, {}))[0]:
                newest[found[0]] = (found[1], item)
        adopted = set()
        for key, (_, item) in newest.items():
            workload = _workload_of(item)
            if workload is None:
                continue
            name = pod_status.name_of(item)
            with self._lock:
                self._tracked.setdefault(name, Tracked(workload, name))
            if self.pods.label(name, {pods_.SCHEDULER_LABEL:
                                      pods_.label_value(self.scheduler_id)}) is None:
                with self._lock:
                    self._tracked.pop(name, None)
                continue
            adopted.add(key)
            log.info("adopted pod %s (%s try %d)", name, key, workload.try_number)
        return [key for key in keys if key not in adopted]

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads; pods keep running for the next scheduler to adopt."""
        self._stopping.set()
        with self._lock:
            dropped = len(self._pending)
            self._pending.clear()
            self._lock.notify_all()
        if dropped:
            log.warning("%d tries were not started before shutdown; the scheduler hands them "
                        "out again", dropped)
        if self.watcher is not None:
            self.watcher.stop()
        self._finishing.put(None)
        for thread in self._threads:
            thread.join(timeout=60 if wait else 30)
        self._threads.clear()
        if self.pods is not None:
            self.pods.client.close()
        self.close_wakeup()

    # ---------------------------------------------------------------------------- creating

    def _create_loop(self) -> None:
        self._delete_orphans()
        while not self._stopping.is_set():
            with self._lock:
                self._lock.wait_for(lambda: self._stopping.is_set() or (
                    self._pending and self._active() < self.parallelism), timeout=1.0)
                batch: list[Tracked] = []
                while self._pending and self._active() + len(batch) < self.parallelism \
                        and len(batch) < self.settings.worker_pods_creation_batch_size:
                    workload = self._pending.popleft()
                    name = pods_.pod_name("flow", workload.key, workload.try_number)
                    self._tracked[name] = Tracked(workload, name)
                    batch.append(self._tracked[name])
            for tracked in batch:
                self._create(tracked)
            self._check_pending()

    def _active(self) -> int:
        return len(self._tracked)

    def _create(self, tracked: Tracked) -> None:
        assert self.pods is not None
        workload = tracked.workload
        try:
            config = self._configs.get(workload.dag_id, workload.task_id, workload.dag_hash)
            body = pods_.worker_pod(workload, self.settings, self.scheduler_id, config,
                                    self._template)
            self.pods.create(body)
        except KubernetesConfigError as err:
            self._give_up(tracked, f"cannot build the pod for this try: {err}")
        except Exception as err:
            status = status_of(err)
            if status == 409:  # made before a restart: make it ours and let the watch see it
                self.pods.label(tracked.name, {pods_.SCHEDULER_LABEL:
                                               pods_.label_value(self.scheduler_id)})
            elif status is not None and 400 <= status < 500:
                self._give_up(tracked, f"Kubernetes refused pod {tracked.name}: "
                                       f"{describe_error(err)}")
            else:
                log.warning("cannot create pod %s: %s", tracked.name, describe_error(err))
                self._forget(tracked.name)
                self.report(TaskEvent(workload.key, "lost", workload.try_number,
                                      {"reason": f"cannot create pod {tracked.name}: "
                                                 f"{describe_error(err)}"}))

    def _check_pending(self) -> None:
        """Give up on pods that cannot start: past the pending timeout, or failing to start
        (image pull errors) for longer than the grace."""
        now = time.monotonic()
        with self._lock:
            stuck = []
            for tracked in self._tracked.values():
                if tracked.finishing or tracked.running_reported:
                    continue
                if tracked.start_failure_since is not None and \
                        now - tracked.start_failure_since > self.settings.image_pull_grace:
                    stuck.append((tracked, f"its container cannot start "
                                           f"({tracked.last_pending_reason})"))
                elif now - tracked.created > self.settings.worker_pods_pending_timeout:
                    stuck.append((tracked, (
                        f"Pending for more than {self.settings.worker_pods_pending_timeout:g} s "
                        f"([kubernetes] worker_pods_pending_timeout): "
                        f"{tracked.last_pending_reason or 'no reason given by Kubernetes'}")))
        for tracked, why in stuck:
            self._give_up(tracked, f"pod {tracked.name} did not start: {why}")

    def _give_up(self, tracked: Tracked, reason: str) -> None:
        with self._lock:
            if tracked.finishing:
                return
            tracked.finishing = True
        log.warning("%s try %d: %s", tracked.workload.key, tracked.workload.try_number, reason)
        self._delete(tracked.name, "it cannot start")
        state = tries.fail_unstarted(tracked.workload, reason)
        if state is None:
            tries.append_reason(tracked.workload, reason)
        self._forget(tracked.name)
        self.report(TaskEvent(tracked.workload.key, "failed", tracked.workload.try_number,
                              {"reason": reason, "pod": tracked.name}))

    # ---------------------------------------------------------------------------- watching

    def _observe(self, kind: str, item: dict[str, Any]) -> None:
        """A pod's new state, from the watcher's thread."""
        name = pod_status.name_of(item)
        phase = pod_status.phase_of(item)
        with self._lock:
            tracked = self._tracked.get(name)
            if tracked is None:
                if name in self._finished or kind == "DELETED" or pod_status.is_deleting(item):
                    return
                workload = _workload_of(item)  # a pod of our scheduler id made before a restart
                if workload is None:
                    return
                tracked = self._tracked[name] = Tracked(workload, name)
            if tracked.finishing:
                return
            if kind == "DELETED" or phase in {"Succeeded", "Failed"}:
                tracked.finishing = True
                self._finishing.put((tracked, item, kind))
                return
            report_running = phase == "Running" and not tracked.running_reported
            if report_running:
                tracked.running_reported = True
            elif phase == "Pending":
                failure = pod_status.start_failure(item)
                if failure and tracked.start_failure_since is None:
                    tracked.start_failure_since = time.monotonic()
                tracked.last_pending_reason = pod_status.pending_reason(item)
        if report_running:
            self.report(TaskEvent(tracked.workload.key, "running", tracked.workload.try_number,
                                  {"pod": name}))

    # --------------------------------------------------------------------------- finishing

    def _finish_loop(self) -> None:
        while True:
            item = self._finishing.get()
            if item is None:
                return
            tracked, last, kind = item
            try:
                self._finish(tracked, last, kind)
            except Exception:
                log.exception("finishing pod %s failed; the scheduler's heartbeat checks will "
                              "end its try", tracked.name)
                self._forget(tracked.name)

    def _finish(self, tracked: Tracked, item: dict[str, Any], kind: str) -> None:
        workload = tracked.workload
        if kind == "DELETED" and self._still_there(tracked):
            return
        state, reason = self._outcome(workload, item, kind)
        info: dict[str, Any] = {"pod": tracked.name}
        if reason:
            info["reason"] = reason
        code = pod_status.exit_code(item)
        if code is not None:
            info["exit_code"] = code
        failed = pod_status.phase_of(item) != "Succeeded"
        if kind != "DELETED" and (self.settings.delete_worker_pods_on_failure if failed
                                  else self.settings.delete_worker_pods):
            self._delete(tracked.name, "it finished")
        elif kind != "DELETED" and self.pods is not None:
            self.pods.label(tracked.name, {pods_.DONE_LABEL: "true"})
        self._forget(tracked.name)
        self.report(TaskEvent(workload.key, state, workload.try_number, info))

    def _still_there(self, tracked: Tracked) -> bool:
        """A watch reports a pod DELETED also when it merely left the selector: another
        scheduler adopted it (and relabelled it). Such a pod is no longer ours to end."""
        assert self.pods is not None
        current = self.pods.read(tracked.name)
        if current is None:
            return False
        owner = pod_status.labels_of(current).get(pods_.SCHEDULER_LABEL)
        if owner != pods_.label_value(self.scheduler_id):
            log.info("pod %s was taken over by scheduler %s", tracked.name, owner)
            self._forget(tracked.name)
        else:  # still ours and not gone yet: its next event decides
            with self._lock:
                tracked.finishing = False
        return True

    def _outcome(self, workload: TaskWorkload, item: dict[str, Any], kind: str
                 ) -> tuple[str, str]:
        """The try's final state and, when the pod decided it, the Kubernetes reason."""
        phase = pod_status.phase_of(item)
        if pod_status.exit_code(item) == EXIT_REFUSED:
            return "refused", "flow tasks run refused the try (not queued for it)"
        if kind == "DELETED" and phase not in {"Succeeded", "Failed"}:
            reason = f"pod {tracked_name(item)} was deleted while {phase}"
        else:
            reason = f"pod {tracked_name(item)} {phase}: {pod_status.failure_reason(item)}"
        row = tries.wait_for_end(workload, SETTLE_SECONDS if kind == "DELETED" else 0.0)
        if row is None or row[1] != workload.try_number:
            return "failed", reason + " (its task instance moved on to another try)"
        state = row[0]
        if state in tries.ENDED:
            return str(state), ""
        if state == "running":
            ended = tries.end_dead(workload, reason)
            return (ended or "failed"), reason
        if state == "queued":
            return (tries.fail_unstarted(workload, reason) or "failed"), reason
        return "failed", reason

    # ----------------------------------------------------------------------------- helpers

    def _delete(self, name: str, why: str) -> None:
        if self.pods is None:
            return
        try:
            self.pods.delete(name, grace_seconds=0 if why == "it finished" else None)
        except Exception as err:
            log.warning("cannot delete pod %s (%s): %s; `flow k8s cleanup` removes it later",
                        name, why, describe_error(err))

    def _forget(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._tracked.pop(name, None)
            self._finished[name] = now
            for old, when in list(self._finished.items()):
                if now - when > FORGET_AFTER:
                    del self._finished[old]
            self._lock.notify_all()

    def _delete_orphans(self) -> None:
        """Delete worker pods of other scheduler ids whose try is no longer queued or running
        (their scheduler died, and the try ended or moved on)."""
        assert self.pods is not None
        try:
            deleted = delete_orphans(self.pods, exclude_scheduler=self.scheduler_id)
        except Exception as err:
            log.warning("looking for orphaned pods failed: %s", describe_error(err))
            return
        for name in deleted:
            log.info("deleted orphaned pod %s", name)


def delete_orphans(pods: Pods, *, exclude_scheduler: str | None = None,
                   finished_too: bool = False, dry_run: bool = False) -> list[str]:
    """The worker and pod-operator pods whose try is no longer queued or running (and with
    ``finished_too``, every ended pod), deleted unless ``dry_run``; their names."""
    items, _ = pods.list(pods_.COMPONENT_LABEL)
    orphans = []
    for item in items:
        labels = pod_status.labels_of(item)
        if exclude_scheduler is not None and labels.get(pods_.SCHEDULER_LABEL) == \
                pods_.label_value(exclude_scheduler):
            continue
        if pod_status.is_deleting(item):
            continue
        done = pod_status.phase_of(item) in {"Succeeded", "Failed"}
        if labels.get(pods_.DONE_LABEL) == "true" and not finished_too:
            continue
        found = pods_.key_of(item)
        if found is None:
            continue
        row = tries.current_try(found[0])
        live = row is not None and row[1] == found[1] and row[0] in {"queued", "running"}
        if not live or (finished_too and done):
            orphans.append(pod_status.name_of(item))
    if not dry_run:
        for name in orphans:
            pods.delete(name)
    return orphans


def tracked_name(item: dict[str, Any]) -> str:
    return pod_status.name_of(item)


def _workload_of(item: dict[str, Any]) -> TaskWorkload | None:
    text = ((item.get("metadata") or {}).get("annotations") or {}).get(
        pods_.WORKLOAD_ANNOTATION)
    if not text:
        return None
    try:
        return TaskWorkload.from_json(text)
    except ValueError:
        log.warning("pod %s has an unreadable %s annotation", pod_status.name_of(item),
                    pods_.WORKLOAD_ANNOTATION)
        return None
