"""The job controller, inside the API server process: a batch/v1 Job gets one pod at a time
(completions=1, parallelism=1), a failed pod is replaced until `backoffLimit` failures, and
the job's status counts its pods and ends with Complete or Failed conditions."""

from __future__ import annotations

import copy
import queue
import threading

from .api import Api
from .meta import ApiError, Obj, timestamp
from .resources import RESOURCES
from .store import Change, Store

JOBS = RESOURCES["jobs"]
PODS = RESOURCES["pods"]


class JobController:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        # Terminated pods already counted, per job uid (upstream tracks this with a finalizer).
        self._counted: dict[str, dict[str, str]] = {}
        threading.Thread(target=self._run, name="job-controller", daemon=True).start()

    def on_change(self, store: Store, change: Change) -> None:
        """Called under the store's lock for every change: only notes which job to look at."""
        meta = change.obj["metadata"]
        if change.resource == "jobs" and change.type != "DELETED":
            self._queue.put((meta["namespace"], meta["name"]))
        elif change.resource == "pods":
            for reference in meta.get("ownerReferences") or []:
                if reference.get("kind") == "Job" and reference.get("controller"):
                    self._queue.put((meta["namespace"], reference["name"]))

    def _run(self) -> None:
        while True:
            namespace, name = self._queue.get()
            try:
                self._sync(namespace, name)
            except ApiError:
                pass  # the job went away or changed meanwhile; its next change syncs it again

    def _sync(self, namespace: str, name: str) -> None:
        with self.api.store.changed:
            job = self.api.store.get(("jobs", namespace, name))
            if job is None or job["metadata"].get("deletionTimestamp"):
                return
            uid = job["metadata"]["uid"]
            pods = [pod for pod in self.api.store.items("pods", namespace)
                    if any(ref.get("uid") == uid
                           for ref in pod["metadata"].get("ownerReferences") or [])]
            counted = self._counted.setdefault(uid, {})
            for pod in pods:
                phase = pod["status"].get("phase")
                if phase in ("Succeeded", "Failed"):
                    counted.setdefault(pod["metadata"]["uid"], phase)
            status = copy.deepcopy(job.get("status") or {})
            status.setdefault("startTime", timestamp())
            succeeded = sum(1 for phase in counted.values() if phase == "Succeeded")
            failed = sum(1 for phase in counted.values() if phase == "Failed")
            active = [pod for pod in pods if pod["status"].get("phase") not in
                      ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")]
            finished = any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                           for c in status.get("conditions") or [])
            if not finished and not active and not job["spec"].get("suspend"):
                if succeeded:
                    self._conclude(status, "Complete", "CompletionsReached",
                                   "Reached expected number of succeeded pods")
                elif failed > job["spec"].get("backoffLimit", 6):
                    self._conclude(status, "Failed", "BackoffLimitExceeded",
                                   "Job has reached the specified backoff limit")
                else:
                    active = [self._create_pod(job)]
            status["active"] = len(active)
            status["ready"] = sum(1 for pod in active if _ready(pod))
            status["terminating"] = sum(1 for pod in pods
                                        if pod["metadata"].get("deletionTimestamp"))
            status["succeeded"], status["failed"] = succeeded, failed
            for zero in ("active", "succeeded", "failed"):
                if not status[zero]:
                    del status[zero]
            status.setdefault("uncountedTerminatedPods", {})
            if status != job.get("status"):
                job["status"] = status
                self.api.replace(JOBS, namespace, name, job, "status")

    @staticmethod
    def _conclude(status: Obj, kind: str, reason: str, message: str) -> None:
        now = timestamp()
        target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        status["conditions"] = (status.get("conditions") or []) + [
            {"type": target, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": now, "lastTransitionTime": now},
            {"type": kind, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": now, "lastTransitionTime": now},
        ]
        if kind == "Complete":
            status["completionTime"] = now

    def _create_pod(self, job: Obj) -> Obj:
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.setdefault("metadata", {})
        meta.pop("name", None)
        meta["generateName"] = f"{job['metadata']['name']}-"
        meta["ownerReferences"] = [{
            "apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        pod: Obj = {"apiVersion": "v1", "kind": "Pod", **template}
        return self.api.create(PODS, job["metadata"]["namespace"], pod)


def _ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions") or [])
