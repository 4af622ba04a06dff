"""The process kubelet: registers its nodes, schedules pending pods onto them through
pods/binding, and runs each bound pod's containers as local processes (see pods.py).

Run as `python -m kube.kubelet --server URL --token T --state-dir D --env-file F [--nodes N]`.
On SIGTERM it kills every process it started and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from .client import ApiCallError, Client
from .events import EventRecorder
from .meta import Obj, stop_with_parent, timestamp
from .pods import Node, PodRunner

NODE_PREFIX = "flow-node-"


def node_object(name: str) -> Obj:
    now = timestamp()

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}

    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "250",
                         "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "250",
                            "ephemeral-storage": "100Gi"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "bootID": "flow-test", "containerRuntimeVersion":
                "process://1.0", "kernelVersion": "6.0.0", "kubeProxyVersion": "",
                "kubeletVersion": "v1.31.0-flow-test", "machineID": name,
                "operatingSystem": "linux", "osImage": "process kubelet for flow tests",
                "systemUUID": name},
        },
    }


class Kubelet:
    def __init__(self, client: Client, nodes: list[str], state_dir: Path,
                 base_env: dict[str, str]) -> None:
        self.client = client
        self.node_names = nodes
        self.state_dir = state_dir
        self.base_env = base_env
        self.lock = threading.Lock()
        self.runners: dict[str, PodRunner] = {}
        self.pending: dict[str, Obj] = {}  # unbound pods by uid, for the scheduler
        self.nodes: dict[str, Obj] = {}
        self._next_node = 0
        self.scheduler_events = EventRecorder(client, "default-scheduler")
        self.node_events = {name: EventRecorder(client, "kubelet", name) for name in nodes}

    # -- nodes ------------------------------------------------------------------------------

    def register(self) -> None:
        for name in self.node_names:
            node = node_object(name)
            try:
                created = self.client.request("POST", "/api/v1/nodes", node)
            except ApiCallError as error:
                if error.code != 409:
                    raise
                created = self.client.request("GET", f"/api/v1/nodes/{name}")
                created["status"] = node["status"]
                created = self.client.request("PUT", f"/api/v1/nodes/{name}/status", created)
            self.nodes[name] = created

    def watch_nodes(self) -> NoReturn:
        while True:
            try:
                listing = self.client.request("GET", "/api/v1/nodes")
                self._nodes_changed(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                for event in self.client.watch("/api/v1/nodes", resourceVersion=version,
                                               allowWatchBookmarks="true", timeoutSeconds=60):
                    if event["type"] == "ERROR":
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._nodes_changed([event["object"]])
            except (OSError, http.client.HTTPException, ApiCallError):
                time.sleep(0.2)

    def _nodes_changed(self, nodes: list[Obj]) -> None:
        with self.lock:
            for node in nodes:
                if node["metadata"]["name"] in self.node_names:
                    self.nodes[node["metadata"]["name"]] = node
            waiting = list(self.pending.values())
        for pod in waiting:
            self.schedule(pod)

    # -- scheduling -------------------------------------------------------------------------

    def schedule(self, pod: Obj) -> None:
        meta = pod["metadata"]
        # The nodes as the API server has them now: the node watch may not have brought a
        # cordon made just before this pod was created (hold_scheduling, then a create).
        with contextlib.suppress(OSError, http.client.HTTPException, ApiCallError):
            current = self.client.request("GET", "/api/v1/nodes")["items"]
            with self.lock:
                for node in current:
                    if node["metadata"]["name"] in self.node_names:
                        self.nodes[node["metadata"]["name"]] = node
        with self.lock:
            eligible = [node for node in self.nodes.values()
                        if not node["spec"].get("unschedulable")
                        and _selects(pod["spec"].get("nodeSelector") or {}, node)]
            unschedulable = sum(1 for n in self.nodes.values() if n["spec"].get("unschedulable"))
            total = len(self.nodes)
            if eligible:
                node = eligible[self._next_node % len(eligible)]
                self._next_node += 1
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if not eligible:
            reasons = []
            if unschedulable:
                reasons.append(f"{unschedulable} node(s) were unschedulable")
            if total - unschedulable:
                reasons.append(f"{total - unschedulable} node(s) didn't match Pod's node "
                               "affinity/selector")
            message = (f"0/{total} nodes are available: {', '.join(reasons)}. preemption: "
                       f"0/{total} nodes are available: {total} Preemption is not helpful for "
                       "scheduling.")
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "PodScheduled" and c.get("message") == message
                   for c in conditions):
                return
            condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": message, "lastProbeTime": None,
                         "lastTransitionTime": timestamp()}
            self._quietly("PATCH", f"{base}/status", {"status": {"conditions": [condition]}},
                          content_type="application/merge-patch+json")
            self.scheduler_events.record(pod, "Warning", "FailedScheduling", message)
            return
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                   "target": {"apiVersion": "v1", "kind": "Node",
                              "name": node["metadata"]["name"]}}
        if self._quietly("POST", f"{base}/binding", binding):
            self.scheduler_events.record(
                pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/"
                f"{meta['name']} to {node['metadata']['name']}")

    def _quietly(self, method: str, path: str, body: Obj, **options: Any) -> bool:
        """A call whose 404 or 409 means someone else moved first (deleted, bound): fine.
        Whether it went through."""
        try:
            self.client.request(method, path, body, **options)
        except ApiCallError as error:
            if error.code not in (404, 409):
                raise
            return False
        return True

    # -- pods -------------------------------------------------------------------------------

    def watch_pods(self) -> NoReturn:
        while True:
            try:
                listing = self.client.request("GET", "/api/v1/pods")
                self._resync(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                for event in self.client.watch("/api/v1/pods", resourceVersion=version,
                                               allowWatchBookmarks="true", timeoutSeconds=60):
                    if event["type"] == "ERROR":
                        break
                    if event["type"] != "BOOKMARK":
                        self.on_pod(event["type"], event["object"])
            except (OSError, http.client.HTTPException, ApiCallError):
                time.sleep(0.2)
            except Exception:  # a kubelet bug must not stop every pod
                traceback.print_exc()
                time.sleep(0.2)

    def _resync(self, pods: list[Obj]) -> None:
        """After a re-list: pods that went away during the gap were deleted."""
        alive = {pod["metadata"]["uid"] for pod in pods}
        with self.lock:
            vanished = [uid for uid in list(self.runners) + list(self.pending)
                        if uid not in alive]
        for uid in vanished:
            self._forget(uid)
        for pod in pods:
            self.on_pod("MODIFIED", pod)

    def on_pod(self, kind: str, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        if kind == "DELETED":
            self._forget(uid)
            return
        node = spec.get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp") and pod["status"].get("phase") == "Pending" \
                    and spec.get("schedulerName") == "default-scheduler":
                with self.lock:
                    self.pending[uid] = pod
                self.schedule(pod)
            return
        confirm = False
        with self.lock:
            self.pending.pop(uid, None)
            if node not in self.node_names:
                return
            runner = self.runners.get(uid)
            if meta.get("deletionTimestamp"):
                if runner is None or runner.finished:
                    confirm = True
                else:
                    runner.deleted = True
                    runner.terminate(int(meta.get("deletionGracePeriodSeconds") or 0))
            elif runner is None and pod["status"].get("phase") not in ("Succeeded", "Failed"):
                runner = PodRunner(self.client, Node(node, self.state_dir, self.base_env,
                                                     self.node_events[node]), pod,
                                   self._finished)
                self.runners[uid] = runner
                runner.start()
        if confirm:
            self._quietly("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                          {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})

    def _finished(self, runner: PodRunner) -> bool:
        """Called by a runner at its end: whether it must confirm the pod's deletion."""
        with self.lock:
            runner.finished = True
            return runner.deleted and not runner.gone.is_set()

    def _forget(self, uid: str) -> None:
        self.scheduler_events.forget(uid)
        for recorder in self.node_events.values():
            recorder.forget(uid)
        with self.lock:
            self.pending.pop(uid, None)
            runner = self.runners.pop(uid, None)
        if runner is not None and not runner.finished:
            runner.force_deleted()

    def kill_everything(self, timeout: float = 5.0) -> None:
        """Kills every container and waits for them to be reaped (and their pid files gone)."""
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.force_deleted()
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.thread.join(max(0.0, deadline - time.monotonic()))


def _selects(selector: dict[str, str], node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kube.kubelet")
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--env-file", type=Path, required=True,
                        help="JSON object: the environment every container starts from")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args(argv)
    kubelet = Kubelet(Client(args.server, args.token),
                      [f"{NODE_PREFIX}{index}" for index in range(args.nodes)], args.state_dir,
                      json.loads(args.env_file.read_text()))

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    stop_with_parent()
    try:
        kubelet.register()
        threading.Thread(target=kubelet.watch_nodes, name="nodes", daemon=True).start()
        print("ready", flush=True)
        kubelet.watch_pods()
    finally:
        kubelet.kill_everything()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
