"""core/v1 Events about pods, as the scheduler and kubelet record them (what
`kubectl describe pod` shows): each (pod, reason, message) once; repeats are not counted."""

from __future__ import annotations

import os
import threading

from .client import ApiCallError, Client
from .meta import Obj, timestamp


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._recorded: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        """Posts a Normal or Warning event about `pod`; a failure to post loses only it."""
        meta = pod["metadata"]
        with self._lock:
            if (meta["uid"], reason, message) in self._recorded:
                return
            self._recorded.add((meta["uid"], reason, message))
        now = timestamp()
        source: Obj = {"component": self.component}
        if self.host:
            source["host"] = self.host
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{os.urandom(8).hex()}",
                         "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"],
                               "resourceVersion": meta.get("resourceVersion", "")},
            "type": kind, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": source,
            "reportingComponent": self.component, "reportingInstance": self.host or "",
        }
        try:
            self.client.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except (ApiCallError, OSError):
            pass

    def forget(self, uid: str) -> None:
        with self._lock:
            self._recorded = {key for key in self._recorded if key[0] != uid}
