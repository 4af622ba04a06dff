"""KubernetesPodOperator: run a container image as a pod; its log is the task's log.

The pod goes to ``namespace`` (default ``[kubernetes] namespace``) of the cluster
``[kubernetes]`` configures (or the ``kubernetes`` connection ``kubernetes_conn_id``). The task
waits for it to start (``startup_timeout_seconds``; an image pull error fails it after
``[kubernetes] image_pull_grace``), streams its log line by line into the task log, and ends
with the container: exit code 0 succeeds, anything else fails the task with the exit code and
the Kubernetes reason (``OOMKilled``, ``Error``). The pod is deleted in every case: success,
failure, timeout and kill (``on_kill``).

XCom (``do_xcom_push``): by default the last line the container printed, parsed as JSON when it
is JSON. With ``xcom_result_path`` the container writes its result there (a JSON file, the path
as the container sees it; ``FLOW_XCOM_RESULT`` names it): the command runs under ``/bin/sh``,
which prints the file after a marker line when the command ends, so the image needs ``sh``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from flow import BaseOperator  # type: ignore[attr-defined]  # the public, lazy facade
from flow.exceptions import FlowException
from flow.execution.workload import TaskKey

XCOM_MARKER = "::flow-xcom-result::"
_WRAPPER = ('mkdir -p "$(dirname "$FLOW_XCOM_RESULT")" 2>/dev/null; "$@"; code=$?; '
            'if [ -f "$FLOW_XCOM_RESULT" ]; then printf "\\n%s\\n" "' + XCOM_MARKER + '"; '
            'cat "$FLOW_XCOM_RESULT"; fi; exit $code')


class PodStartFailed(FlowException):
    """The pod did not start: it stayed Pending or its image could not be pulled."""


class PodFailed(FlowException):
    """The pod's container ended with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class KubernetesPodOperator(BaseOperator):
    """Run ``image`` (with ``cmds`` as its command and ``arguments`` as its args) in a pod."""

    template_fields = ("image", "cmds", "arguments", "env_vars", "labels", "annotations",
                       "namespace")
    ui_color = "#d6e4ff"

    def __init__(self, *, image: str, cmds: list[str] | None = None,
                 arguments: list[str] | None = None, env_vars: dict[str, str] | None = None,
                 resources: dict[str, Any] | None = None, namespace: str | None = None,
                 labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None, name: str | None = None,
                 node_selector: dict[str, str] | None = None,
                 tolerations: list[dict[str, Any]] | None = None,
                 service_account_name: str | None = None,
                 volumes: list[dict[str, Any]] | None = None,
                 volume_mounts: list[dict[str, Any]] | None = None,
                 pod_override: dict[str, Any] | None = None,
                 startup_timeout_seconds: float = 120.0, xcom_result_path: str | None = None,
                 get_logs: bool = True, kubernetes_conn_id: str | None = None,
                 poll_interval: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.cmds = list(cmds or [])
        self.arguments = list(arguments or [])
        self.env_vars = dict(env_vars or {})
        self.resources = resources
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.name = name
        self.node_selector = node_selector
        self.tolerations = tolerations
        self.service_account_name = service_account_name
        self.volumes = volumes
        self.volume_mounts = volume_mounts
        self.pod_override = pod_override
        self.startup_timeout_seconds = startup_timeout_seconds
        self.xcom_result_path = xcom_result_path
        self.get_logs = get_logs
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval = poll_interval
        if xcom_result_path and not self.cmds:
            raise ValueError(f"task {self.task_id!r}: xcom_result_path needs cmds (the "
                             "command is run under /bin/sh to read the result file)")
        self._pods: Any = None
        self._pod_name: str | None = None
        self._in_result = False

    def prepare_for_execution(self) -> KubernetesPodOperator:
        clone = super().prepare_for_execution()
        assert isinstance(clone, KubernetesPodOperator)
        clone._pods, clone._pod_name, clone._in_result = None, None, False
        return clone

    # ------------------------------------------------------------------------------ the pod

    def build_pod(self, context: dict[str, Any], namespace: str = "default"
                  ) -> dict[str, Any]:
        """The pod manifest for this try (labels and annotations identify it)."""
        from flow_k8s import pod as pods_

        key, try_number = _key(context, self)
        name = pods_.pod_name(_dns_label(self.name or "flow-pod"), key, try_number)
        container: dict[str, Any] = {"name": pods_.WORKER_CONTAINER, "image": self.image}
        env = {str(k): str(v) for k, v in self.env_vars.items()}
        if self.xcom_result_path and self.do_xcom_push:
            env["FLOW_XCOM_RESULT"] = self.xcom_result_path
            container["command"] = ["/bin/sh", "-c", _WRAPPER, "flow-xcom", *self.cmds,
                                    *self.arguments]
        else:
            if self.cmds:
                container["command"] = list(self.cmds)
            if self.arguments:
                container["args"] = list(self.arguments)
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if self.resources:
            container["resources"] = self.resources
        if self.volume_mounts:
            container["volumeMounts"] = self.volume_mounts
        spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
        for field, value in (("nodeSelector", self.node_selector),
                             ("tolerations", self.tolerations),
                             ("serviceAccountName", self.service_account_name),
                             ("volumes", self.volumes)):
            if value:
                spec[field] = value
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {**{str(k): str(v) for k, v in self.labels.items()},
                                        **pods_.identity_labels(key, try_number,
                                                                pods_.POD_OPERATOR)},
                             "annotations": {**self.annotations,
                                             **pods_.identity_annotations(key, try_number)}},
                "spec": spec}
        if self.pod_override:
            body = pods_.deep_merge(body, self.pod_override)
        return body

    # -------------------------------------------------------------------------- running

    def execute(self, context: dict[str, Any]) -> Any:
        from flow_k8s.client import Pods, api_client, namespace_of
        from flow_k8s.settings import KubernetesSettings

        settings = KubernetesSettings.load()
        if self.kubernetes_conn_id:
            settings = replace(settings, conn_id=self.kubernetes_conn_id)
        namespace = self.namespace or namespace_of(settings)
        body = self.build_pod(context, namespace)
        self._pods = Pods(api_client(settings), namespace, settings.api_retries)
        self._pod_name = body["metadata"]["name"]
        self.log.info("Creating pod %s in namespace %s (image %s)", self._pod_name, namespace,
                      self.image)
        try:
            self._pods.create(body)
            self._await_start(settings.image_pull_grace)
            lines = self._follow_logs() if self.get_logs else []
            return self._result(self._await_end(), lines)
        finally:
            self._delete_pod()

    def on_kill(self) -> None:
        self._delete_pod()

    def _await_start(self, image_pull_grace: float) -> None:
        from flow_k8s import status

        deadline = time.monotonic() + self.startup_timeout_seconds
        failing_since: float | None = None
        while True:
            pod = self._read()
            if status.phase_of(pod) != "Pending":
                return
            failure = status.start_failure(pod)
            now = time.monotonic()
            failing_since = (failing_since or now) if failure else None
            if failure and now - (failing_since or now) >= min(image_pull_grace,
                                                               self.startup_timeout_seconds):
                raise PodStartFailed(f"pod {self._pod_name} cannot start: {failure}")
            if now > deadline:
                raise PodStartFailed(
                    f"pod {self._pod_name} did not start within {self.startup_timeout_seconds:g}"
                    f" s (startup_timeout_seconds): {status.pending_reason(pod)}")
            time.sleep(self.poll_interval)

    def _follow_logs(self) -> list[str]:
        """Stream the container's log into the task log; the lines, for the XCom."""
        lines: list[str] = []
        response = self._pods.api.read_namespaced_pod_log(
            self._pod_name, self._pods.namespace, container="base", follow=True,
            _preload_content=False)
        try:
            pending = b""
            for chunk in response.stream(amt=None, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    self._log_line(raw, lines)
            if pending:
                self._log_line(pending, lines)
        finally:
            response.release_conn()
        return lines

    def _log_line(self, raw: bytes, lines: list[str]) -> None:
        line = raw.decode("utf-8", errors="backslashreplace").rstrip("\r")
        if line == XCOM_MARKER:
            self._in_result = True
        elif not self._in_result:
            self.log.info("%s", line)
        lines.append(line)

    def _await_end(self) -> dict[str, Any]:
        from flow_k8s import status

        while True:
            pod = self._read()
            if status.phase_of(pod) in {"Succeeded", "Failed"}:
                return pod
            time.sleep(self.poll_interval)

    def _result(self, pod: dict[str, Any], lines: list[str]) -> Any:
        from flow_k8s import status

        code = status.exit_code(pod)
        if status.phase_of(pod) != "Succeeded":
            raise PodFailed(f"pod {self._pod_name} failed: {status.failure_reason(pod)}", code)
        self.log.info("Pod %s succeeded (exit code %s)", self._pod_name, code)
        if not self.do_xcom_push:
            return None
        if self.xcom_result_path:
            if XCOM_MARKER not in lines:
                raise FlowException(f"task {self.task_id!r}: the container wrote no result file "
                                    f"at {self.xcom_result_path} (xcom_result_path)")
            text = "\n".join(lines[lines.index(XCOM_MARKER) + 1:])
            try:
                return json.loads(text)
            except json.JSONDecodeError as err:
                raise FlowException(f"task {self.task_id!r}: the result file "
                                    f"{self.xcom_result_path} is not JSON: {err}") from None
        last = next((line for line in reversed(lines) if line.strip()), None)
        if last is None:
            return None
        try:
            return json.loads(last)
        except json.JSONDecodeError:
            return last

    def _read(self) -> dict[str, Any]:
        pod = self._pods.read(self._pod_name)
        if pod is None:
            raise PodFailed(f"pod {self._pod_name} disappeared (deleted from outside)", None)
        result: dict[str, Any] = pod
        return result

    def _delete_pod(self) -> None:
        pods, name = self._pods, self._pod_name
        if pods is None or name is None:
            return
        try:
            if pods.delete(name, grace_seconds=0):
                self.log.info("Deleted pod %s", name)
        except Exception as err:
            from flow_k8s.client import describe_error

            self.log.warning("cannot delete pod %s: %s (`flow k8s cleanup` removes it)", name,
                             describe_error(err))


def _key(context: dict[str, Any], task: Any) -> tuple[TaskKey, int]:
    ti = context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(getattr(task, "dag", None), "dag_id", "")
    key = TaskKey(str(dag_id), str(getattr(ti, "run_id", None) or context.get("run_id") or ""),
                  task.task_id, int(getattr(ti, "map_index", -1)))
    return key, int(getattr(ti, "try_number", 1) or 1)


def _dns_label(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:20] or "flow-pod"
