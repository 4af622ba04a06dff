"""Reading a pod's status (a JSON dict): its phase, why it is stuck, why it failed."""

from __future__ import annotations

from typing import Any

from flow_k8s.pod import WORKER_CONTAINER

# Waiting reasons that mean the container will not start without someone changing something.
START_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                            "ErrImageNeverPull", "CreateContainerConfigError",
                            "CreateContainerError", "RunContainerError"})


def name_of(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def phase_of(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def labels_of(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def is_deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _worker_status(pod: dict[str, Any], container: str = WORKER_CONTAINER
                   ) -> dict[str, Any] | None:
    statuses = _container_statuses(pod)
    return next((s for s in statuses if s.get("name") == container),
                statuses[0] if statuses else None)


def exit_code(pod: dict[str, Any], container: str = WORKER_CONTAINER) -> int | None:
    """The worker container's exit code once it terminated, else None."""
    status = _worker_status(pod, container)
    terminated = ((status or {}).get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")
    return code if isinstance(code, int) else None


def start_failure(pod: dict[str, Any]) -> str | None:
    """Why a container cannot start (``ErrImagePull: ...``), or None."""
    for status in _container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in START_FAILURES:
            message = waiting.get("message") or ""
            return f"{waiting['reason']}: {message}".rstrip(": ")
    return None


def pending_reason(pod: dict[str, Any]) -> str:
    """Why a pod is still Pending: a start failure, the scheduling condition, or nothing."""
    failure = start_failure(pod)
    if failure:
        return failure
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason') or 'Unschedulable'}: " \
                   f"{condition.get('message') or 'not scheduled'}"
    for status in _container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
    return "no reason given by Kubernetes"


def failure_reason(pod: dict[str, Any], container: str = WORKER_CONTAINER) -> str:
    """Why a pod ended, as Kubernetes says it: the container's terminated reason and exit code
    (``OOMKilled (exit code 137)``), the pod's own reason (``Evicted: ...``)."""
    parts = []
    status = pod.get("status") or {}
    if status.get("reason"):
        parts.append(f"{status['reason']}: {status.get('message') or ''}".rstrip(": "))
    worker = _worker_status(pod, container)
    terminated = ((worker or {}).get("state") or {}).get("terminated") or {}
    if terminated:
        reason = terminated.get("reason") or "Error"
        text = f"container {worker.get('name') if worker else container} terminated: {reason} " \
               f"(exit code {terminated.get('exitCode')})"
        if terminated.get("message"):
            text += f": {terminated['message']}"
        parts.append(text)
    return "; ".join(parts) or f"phase {phase_of(pod)}, no reason given by Kubernetes"
