"""Helpers of the flow-k8s tests: settings for the test cluster, waiting, reading logs."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGE = "flow-worker:test"
# What a worker pod's `flow tasks run` needs of the test's environment.
_FORWARDED = ("FLOW_HOME",)
_FORWARDED_PREFIXES = ("FLOW__", "FLOW_CONN_", "FLOW_VAR_")


def flow_command() -> str:
    """The ``flow`` script of this interpreter's environment (pods get no PATH to it)."""
    return str(Path(sys.executable).with_name("flow"))


def worker_env() -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in sorted(os.environ.items())
            if (name in _FORWARDED or name.startswith(_FORWARDED_PREFIXES))
            and not name.startswith("FLOW__KUBERNETES__")]


def pod_template() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "flow-test"}},
            "spec": {"containers": [{"name": "base", "image": IMAGE, "env": worker_env()}]}}


def test_settings(cluster: Any, **overrides: Any) -> Any:
    from flow_k8s.settings import KubernetesSettings

    values: dict[str, Any] = {
        "namespace": "default", "image": IMAGE, "pod_template": pod_template(),
        "worker_command": (flow_command(),), "kubeconfig": str(cluster.kubeconfig),
        "delete_worker_pods": True, "delete_worker_pods_on_failure": True,
        "worker_pods_pending_timeout": 60.0, "image_pull_grace": 3.0, "watch_timeout": 5,
        "api_retries": 3}
    values.update(overrides)
    return KubernetesSettings(**values)


def settings_environment(cluster: Any, **overrides: Any) -> dict[str, str]:
    """The same settings as ``FLOW__KUBERNETES__*`` variables (for child processes)."""
    values: dict[str, Any] = {
        "namespace": "default", "image": IMAGE, "pod_template": json.dumps(pod_template()),
        "worker_command": json.dumps([flow_command()]), "kubeconfig": str(cluster.kubeconfig),
        "delete_worker_pods_on_failure": "true", "worker_pods_pending_timeout": "60",
        "image_pull_grace": "3", "watch_timeout": "5"}
    values.update(overrides)
    return {f"FLOW__KUBERNETES__{name.upper()}": str(value) for name, value in values.items()}


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


def task_log(home: Path, dag_id: str, task_id: str, try_number: int) -> str:
    """The text of a try's log file(s), wherever the run's folder is."""
    found = [p for p in (home / "logs").rglob("*.log")
             if f"dag_id={dag_id}" in str(p) and f"task_id={task_id}" in str(p)
             and p.name.startswith(f"attempt={try_number}")]
    return "".join(p.read_text() for p in found)


def pods_of(cluster: Any, task_id: str) -> list[dict[str, Any]]:
    return [pod for pod in cluster.pods()
            if (pod.get("metadata") or {}).get("labels", {}).get("flow-task-id") == task_id]
