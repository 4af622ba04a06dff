"""One pod on the process kubelet: image "pull", environment, init containers one after the
other, then the containers side by side, with restarts as the restartPolicy says, and every
step reported through pods/status like a kubelet does."""

from __future__ import annotations

import copy
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .client import ApiCallError, Client
from .containers import ContainerProcess, Exit, image_id
from .environment import ConfigError, EnvironmentBuilder, expand
from .events import EventRecorder
from .meta import Obj, timestamp
from .podlogs import log_path

BAD_IMAGE_MARKERS = ("does-not-exist", "no-such-image", "errimagepull")
RETRY = 1.0  # seconds between retries of a pull or a missing secret, and the restart backoff


@dataclass
class Node:
    name: str
    state_dir: Path
    base_env: dict[str, str]
    events: EventRecorder


class PodRunner:
    def __init__(self, client: Client, node: Node, pod: Obj,
                 on_finished: Callable[[PodRunner], bool]) -> None:
        self.client = client
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.spec = pod["spec"]
        self.on_finished = on_finished
        self.stopping = threading.Event()  # deleted, or past activeDeadlineSeconds
        self.deadline_exceeded = False
        self._report_lock = threading.Lock()
        self.gone = threading.Event()  # removed from the API (force deletion): report nothing
        self.finished = False
        self.deleted = False  # set by the kubelet when the API asked for the pod's deletion
        self._lock = threading.Lock()
        self._processes: dict[str, ContainerProcess] = {}
        self._kill_timer: threading.Timer | None = None
        self._kill_at = 0.0
        self._deadline_timer: threading.Timer | None = None
        self._statuses: dict[str, Obj] = {}
        self._init_statuses: dict[str, Obj] = {}
        self._start_time = timestamp()
        self._conditions: dict[str, Obj] = {}
        self._phase = "Pending"
        self._reason: str | None = None
        self._message: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # -- called by the kubelet from its watch -------------------------------------------------

    def terminate(self, grace: int) -> None:
        """Graceful deletion: SIGTERM now, SIGKILL once the grace period is over."""
        first = not self.stopping.is_set()
        self.stopping.set()
        kill_at = time.monotonic() + grace
        with self._lock:
            processes = list(self._processes.values())
            if self._kill_timer is None or kill_at < self._kill_at:
                # A second delete may shorten the grace period, never lengthen it.
                if self._kill_timer is not None:
                    self._kill_timer.cancel()
                self._kill_at = kill_at
                self._kill_timer = threading.Timer(grace, self.kill)
                self._kill_timer.daemon = True
                self._kill_timer.start()
        if first:
            for process in processes:
                self._event("Normal", "Killing",
                            f"Stopping container {process.container['name']}")
                process.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.stopping.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            process.signal(signal.SIGKILL)

    def _deadline_passed(self) -> None:
        self.deadline_exceeded = True
        self._event("Normal", "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline")
        self.kill()

    def force_deleted(self) -> None:
        self.gone.set()
        self.kill()

    def signal_container(self, container: str, number: int) -> bool:
        with self._lock:
            process = self._processes.get(container)
        if process is None:
            return False
        process.signal(number)
        return True

    # -- the pod's life -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._live()
        except Exception:
            traceback.print_exc()
            self._phase, self._reason = "Failed", "KubeletError"
            self._message = traceback.format_exc(limit=2)
            self._report()
        finally:
            for timer in (self._kill_timer, self._deadline_timer):
                if timer is not None:
                    timer.cancel()
            self.kill()
            if self.on_finished(self):
                self._confirm_deletion()

    def _live(self) -> None:
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline:
            self._deadline_timer = threading.Timer(deadline, self._deadline_passed)
            self._deadline_timer.daemon = True
            self._deadline_timer.start()
        containers = self.spec["containers"]
        init_containers = self.spec.get("initContainers") or []
        self._set_condition("PodScheduled", True)
        self._set_condition("PodReadyToStartContainers", False)
        self._set_condition("Initialized", not init_containers,
                            None if not init_containers else "ContainersNotInitialized")
        self._set_condition("Ready", False, "ContainersNotReady")
        self._set_condition("ContainersReady", False, "ContainersNotReady")
        for container in init_containers:
            self._init_statuses[container["name"]] = self._waiting(container, "PodInitializing")
        for container in containers:
            reason = "PodInitializing" if init_containers else "ContainerCreating"
            self._statuses[container["name"]] = self._waiting(container, reason)
        self._report()
        if not self._pull_images(init_containers + containers):
            if self.deadline_exceeded:
                self._conclude()
            return
        self._set_condition("PodReadyToStartContainers", True)
        for container in init_containers:
            exit_ = self._run_with_restarts(container, self._init_statuses, init=True)
            if self.stopping.is_set() or exit_ is None or exit_.code != 0:
                self._conclude()
                return
        self._set_condition("Initialized", True)
        runners = [threading.Thread(target=self._run_with_restarts,
                                    args=(container, self._statuses), daemon=True)
                   for container in containers]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        self._conclude()

    def _pull_images(self, containers: list[Obj]) -> bool:
        """An image named like a missing one never pulls: ErrImagePull, then ImagePullBackOff,
        until the pod is deleted."""
        bad = [c for c in containers if any(m in c["image"] for m in BAD_IMAGE_MARKERS)]
        reason = "ErrImagePull"
        while bad and not self.stopping.is_set():
            for container in bad:
                statuses = self._statuses if container in self.spec["containers"] \
                    else self._init_statuses
                message = (f'rpc error: code = NotFound desc = failed to pull and unpack image '
                           f'"{container["image"]}": not found')
                statuses[container["name"]] = self._waiting(container, reason, message)
                self._event("Warning", "Failed",
                            f'Failed to pull image "{container["image"]}": {message}')
                self._event("Normal", "BackOff", f'Back-off pulling image "{container["image"]}"')
            self._report()
            reason = "ImagePullBackOff" if reason == "ErrImagePull" else "ErrImagePull"
            self.stopping.wait(RETRY)
        return not bad

    def _environment(self, container: Obj) -> dict[str, str] | None:
        """The container's environment, waiting in CreateContainerConfigError while a secret
        or config map it needs is missing."""
        while not self.stopping.is_set():
            try:
                own = EnvironmentBuilder(self.client, self.pod).build(container)
            except ConfigError as missing:
                statuses = self._init_statuses if container in (
                    self.spec.get("initContainers") or []) else self._statuses
                statuses[container["name"]] = self._waiting(
                    container, "CreateContainerConfigError", str(missing))
                self._event("Warning", "Failed", f"Error: {missing}")
                self._report()
                self.stopping.wait(RETRY)
                continue
            env = dict(self.node.base_env)
            env["HOSTNAME"] = self.name
            env.update(own)
            return env
        return None

    def _run_with_restarts(self, container: Obj, statuses: dict[str, Obj],
                           init: bool = False) -> Exit | None:
        policy = self.spec.get("restartPolicy", "Always")
        if init and policy == "Always":
            policy = "OnFailure"  # init containers never restart after success
        run = 0
        while True:
            exit_ = self._run_once(container, statuses, run, init)
            if exit_ is None or self.stopping.is_set():
                return exit_
            if policy == "Never" or (policy == "OnFailure" and exit_.code == 0):
                return exit_
            run += 1
            self._event("Warning", "BackOff", f"Back-off restarting failed container "
                        f"{container['name']} in pod {self.name}_{self.namespace}({self.uid})")
            self._set_status(statuses, container, lastState=exit_.state(), state={"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {RETRY:g}s restarting failed container="
                           f"{container['name']} pod={self.name}_{self.namespace}({self.uid})"}},
                restartCount=run, ready=False, started=False)
            self._report()
            self.stopping.wait(RETRY)

    def _run_once(self, container: Obj, statuses: dict[str, Obj], run: int,
                  init: bool) -> Exit | None:
        env = self._environment(container)
        if env is None:
            return None
        resolved = copy.deepcopy(container)
        for field_name in ("command", "args"):
            if resolved.get(field_name):
                resolved[field_name] = [expand(part, env) for part in resolved[field_name]]
        state_dir = self.node.state_dir
        cwd = Path(container.get("workingDir") or
                   state_dir / "sandboxes" / f"{self.namespace}_{self.name}_{self.uid}")
        if not container.get("workingDir"):
            cwd.mkdir(parents=True, exist_ok=True)
        process = ContainerProcess(
            resolved, log_path(state_dir, self.namespace, self.name, self.uid,
                               container["name"], run),
            state_dir / "pids" / f"{self.namespace}_{self.name}_{self.uid}_{container['name']}",
            cwd, env)
        with self._lock:
            if self.stopping.is_set():
                return None
            failed: Exit | None
            if not cwd.is_dir():
                failed = process.start_error(f"chdir to cwd (\"{cwd}\") set in config.json "
                                              "failed: no such file or directory")
            else:
                failed = process.start()
            if failed is None:
                self._processes[container["name"]] = process
        if failed is not None:
            self._set_status(statuses, container, restartCount=run, state=failed.state())
            self._event("Warning", "Failed", f"Error: {failed.message}")
            return failed
        self._set_status(statuses, container, restartCount=run, containerID=process.container_id,
                         state={"running": {"startedAt": process.started_at}}, started=True,
                         ready=not init, imageID=image_id(container["image"]))
        self._running_phase()
        exit_ = process.wait()
        with self._lock:
            self._processes.pop(container["name"], None)
        self._set_status(statuses, container, state=exit_.state(), ready=False, started=False)
        if any("running" in s["state"] for s in self._statuses.values()):
            self._running_phase()
        # Otherwise the pod's end (or the restart) is reported in one go, as a kubelet does.
        return exit_

    # -- status ---------------------------------------------------------------------------

    def _running_phase(self) -> None:
        statuses = list(self._statuses.values())
        running = [s for s in statuses if "running" in s["state"]]
        if running:
            self._phase = "Running"
        everyone_ready = all(s.get("ready") for s in statuses)
        self._set_condition("ContainersReady", everyone_ready,
                            None if everyone_ready else "ContainersNotReady")
        self._set_condition("Ready", everyone_ready,
                            None if everyone_ready else "ContainersNotReady")
        self._report()

    def _conclude(self) -> None:
        exits = [s["state"].get("terminated") for s in
                 list(self._init_statuses.values()) + list(self._statuses.values())]
        ended = [e for e in exits if e is not None]
        if self.deadline_exceeded:
            self._phase, self._reason = "Failed", "DeadlineExceeded"
            self._message = "Pod was active on the node longer than the specified deadline"
        elif len(ended) == len(exits) and all(e["exitCode"] == 0 for e in ended):
            self._phase = "Succeeded"
        elif self.stopping.is_set() and self._phase == "Pending":
            pass  # deleted before it ran: the pod just goes away
        else:
            self._phase = "Failed"
        for name in ("Ready", "ContainersReady"):
            self._set_condition(name, False, "PodCompleted")
        self._set_condition("PodReadyToStartContainers", False)
        self._report()

    def _event(self, kind: str, reason: str, message: str) -> None:
        if not self.gone.is_set():
            self.node.events.record(self.pod, kind, reason, message)

    @staticmethod
    def _set_status(statuses: dict[str, Obj], container: Obj, **changes: object) -> None:
        # A new dict rather than an update in place: another container's thread may be
        # copying the statuses for a report at this moment.
        statuses[container["name"]] = {**statuses[container["name"]], **changes}

    def _set_condition(self, kind: str, status: bool, reason: str | None = None) -> None:
        value = "True" if status else "False"
        current = self._conditions.get(kind)
        if current is not None and current["status"] == value and current.get("reason") == reason:
            return
        condition: Obj = {"type": kind, "status": value, "lastProbeTime": None,
                          "lastTransitionTime": timestamp()}
        if reason:
            condition["reason"] = reason
        self._conditions[kind] = condition

    def _waiting(self, container: Obj, reason: str, message: str | None = None) -> Obj:
        waiting: Obj = {"reason": reason}
        if message:
            waiting["message"] = message
        return {"name": container["name"], "image": container["image"], "imageID": "",
                "ready": False, "started": False, "restartCount": 0,
                "state": {"waiting": waiting}, "lastState": {}}

    def _report(self) -> None:
        with self._report_lock:
            self._send_status()

    def _send_status(self) -> None:
        if self.gone.is_set():
            return
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                 "PodScheduled"]
        status: Obj = {
            "phase": self._phase, "reason": self._reason, "message": self._message,
            "conditions": [self._conditions[k] for k in order if k in self._conditions],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self._start_time,
            "containerStatuses": copy.deepcopy(list(self._statuses.values())),
            "initContainerStatuses": copy.deepcopy(list(self._init_statuses.values())) or None,
        }
        try:
            self.client.request("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/"
                                f"{self.name}/status", {"status": status},
                                content_type="application/merge-patch+json")
        except ApiCallError as error:
            if error.code != 404:
                raise

    def _confirm_deletion(self) -> None:
        """The kubelet's last word on a deleted pod: remove it now that nothing runs."""
        try:
            self.client.request("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/"
                                f"{self.name}", {"gracePeriodSeconds": 0,
                                                 "preconditions": {"uid": self.uid}})
        except ApiCallError as error:
            if error.code not in (404, 409):
                raise
