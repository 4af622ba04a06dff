"""Pod manifests as plain dicts: names, labels, the base template and ``executor_config``.

A worker pod is the base template (``[kubernetes] pod_template_file``, a YAML file, or the inline
JSON ``pod_template``; a minimal pod without either) deep-merged with the task's
``executor_config["kubernetes"]``, with flow's own fields laid over it last: the name, the
labels and annotations that identify the try, ``restartPolicy: Never`` and the worker
container's command ``flow tasks run --workload <json>``.

Kubernetes names and label values allow fewer characters than flow's ids, so pods carry the ids
twice: sanitised in labels (for selectors) and exact in annotations (for reading back). The
label ``flow-key`` is a hash of the exact task instance key, so a selector finds a task
instance's pods even when two ids sanitise alike.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from flow.execution.workload import TaskKey, TaskWorkload
from flow_k8s.settings import KubernetesConfigError, KubernetesSettings

WORKER_CONTAINER = "base"
# Labels every pod flow makes carries; ``flow-component`` says which part of flow made it.
COMPONENT_LABEL, WORKER, POD_OPERATOR = "flow-component", "worker", "pod-operator"
SCHEDULER_LABEL = "flow-scheduler-id"
KEY_LABEL, TRY_LABEL = "flow-key", "flow-try-number"
DONE_LABEL = "flow-done"
ANNOTATION_PREFIX = "flow.io/"
WORKLOAD_ANNOTATION = "flow.io/workload"

# executor_config["kubernetes"] keys, each a friendly name for one place in the pod.
_CONTAINER_KEYS = {"resources": "resources", "env": "env", "env_from": "envFrom",
                   "volume_mounts": "volumeMounts", "image": "image",
                   "image_pull_policy": "imagePullPolicy"}
_SPEC_KEYS = {"node_selector": "nodeSelector", "tolerations": "tolerations",
              "volumes": "volumes", "service_account_name": "serviceAccountName",
              "affinity": "affinity", "priority_class_name": "priorityClassName",
              "image_pull_secrets": "imagePullSecrets"}
_META_KEYS = {"labels", "annotations"}
EXECUTOR_CONFIG_KEYS = frozenset(_CONTAINER_KEYS) | frozenset(_SPEC_KEYS) | _META_KEYS | {
    "pod_override"}
# Lists whose items are merged by this key instead of replaced.
_MERGE_BY = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
             "volumeMounts": "mountPath", "ports": "containerPort"}

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 characters, alphanumeric at both ends);
    a hash suffix keeps long or changed values distinct."""
    clean = _LABEL_VALUE.sub("_", text).strip("_.-")
    if clean == text and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('_.-')}-{digest}".lstrip("-")


def key_hash(key: TaskKey) -> str:
    """A label value naming one task instance exactly."""
    text = json.dumps([key.dag_id, key.run_id, key.task_id, key.map_index])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def pod_name(prefix: str, key: TaskKey, try_number: int) -> str:
    """A DNS-1123 name, unique per try, readable: ``<prefix>-<dag>-<task>-<hash>``."""
    digest = hashlib.sha256(f"{key_hash(key)}/{try_number}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9]+", "-", f"{key.dag_id}-{key.task_id}".lower()).strip("-")
    return f"{prefix}-{readable[:40].rstrip('-')}-{digest}".replace("--", "-")


def identity_labels(key: TaskKey, try_number: int, component: str) -> dict[str, str]:
    labels = {COMPONENT_LABEL: component, KEY_LABEL: key_hash(key),
              "flow-dag-id": label_value(key.dag_id), "flow-task-id": label_value(key.task_id),
              "flow-run-id": label_value(key.run_id), TRY_LABEL: str(try_number)}
    if key.map_index >= 0:  # a label value cannot start with "-"
        labels["flow-map-index"] = str(key.map_index)
    return {name: value for name, value in labels.items() if value}


def identity_annotations(key: TaskKey, try_number: int) -> dict[str, str]:
    return {f"{ANNOTATION_PREFIX}dag-id": key.dag_id, f"{ANNOTATION_PREFIX}run-id": key.run_id,
            f"{ANNOTATION_PREFIX}task-id": key.task_id,
            f"{ANNOTATION_PREFIX}map-index": str(key.map_index),
            f"{ANNOTATION_PREFIX}try-number": str(try_number)}


def key_of(pod: dict[str, Any]) -> tuple[TaskKey, int] | None:
    """The task instance key and try number a pod's annotations name (None: not flow's)."""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        key = TaskKey(notes[f"{ANNOTATION_PREFIX}dag-id"], notes[f"{ANNOTATION_PREFIX}run-id"],
                      notes[f"{ANNOTATION_PREFIX}task-id"],
                      int(notes[f"{ANNOTATION_PREFIX}map-index"]))
        return key, int(notes[f"{ANNOTATION_PREFIX}try-number"])
    except (KeyError, ValueError):
        return None


# ------------------------------------------------------------------------------- templates


def load_template(settings: KubernetesSettings) -> dict[str, Any]:
    """The base pod: the template file, else the inline template, else a minimal pod."""
    if settings.pod_template_file:
        return read_template_file(Path(settings.pod_template_file))
    if settings.pod_template:
        return _checked_template(copy.deepcopy(settings.pod_template),
                                 "[kubernetes] pod_template")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {},
            "spec": {"containers": [{"name": WORKER_CONTAINER}]}}


def read_template_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise KubernetesConfigError(f"[kubernetes] pod_template_file {path} cannot be read: "
                                    f"{err}") from None
    except yaml.YAMLError as err:
        raise KubernetesConfigError(f"[kubernetes] pod_template_file {path} is not valid "
                                    f"YAML: {err}") from None
    return _checked_template(data, f"pod template file {path}")


def _checked_template(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise KubernetesConfigError(f"{where} must be a pod manifest (a mapping), got "
                                    f"{type(data).__name__}")
    if data.get("kind", "Pod") != "Pod":
        raise KubernetesConfigError(f"{where} must be a Pod, got kind {data.get('kind')!r}")
    spec = data.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise KubernetesConfigError(f"{where}: spec.containers must be a list of containers")
    if not containers:
        containers.append({"name": WORKER_CONTAINER})
    data.setdefault("apiVersion", "v1")
    data["kind"] = "Pod"
    return data


def worker_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The container named ``base``, else the first: the one that runs the task."""
    containers = pod["spec"]["containers"]
    return next((c for c in containers if c.get("name") == WORKER_CONTAINER), containers[0])


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings merge key by key, lists of named things
    (containers, env, volumes, volume mounts) merge item by item, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            if name in merged and name in _MERGE_BY and isinstance(value, list) \
                    and isinstance(merged[name], list):
                merged[name] = _merge_list(merged[name], value, _MERGE_BY[name])
            elif name in merged:
                merged[name] = deep_merge(merged[name], value)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def _merge_list(base: list[Any], override: list[Any], by: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in override:
        index = next((i for i, old in enumerate(merged) if isinstance(old, dict)
                      and isinstance(item, dict) and old.get(by) == item.get(by)), None)
        if index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = deep_merge(merged[index], item)
    return merged


def override_from_executor_config(executor_config: dict[str, Any], where: str
                                  ) -> dict[str, Any]:
    """The pod override that ``executor_config["kubernetes"]`` describes."""
    config = executor_config.get("kubernetes") or {}
    if not isinstance(config, dict):
        raise KubernetesConfigError(f"{where}: executor_config['kubernetes'] must be a mapping, "
                                    f"got {type(config).__name__}")
    unknown = sorted(set(config) - EXECUTOR_CONFIG_KEYS)
    if unknown:
        raise KubernetesConfigError(f"{where}: executor_config['kubernetes'] has unknown "
                                    f"key(s) {', '.join(unknown)}; known: "
                                    f"{', '.join(sorted(EXECUTOR_CONFIG_KEYS))}")
    container = {_CONTAINER_KEYS[name]: value for name, value in config.items()
                 if name in _CONTAINER_KEYS}
    if "env" in container:
        container["env"] = _env_list(container["env"], where)
    spec: dict[str, Any] = {_SPEC_KEYS[name]: value for name, value in config.items()
                            if name in _SPEC_KEYS}
    if container:
        spec["containers"] = [{"name": WORKER_CONTAINER, **container}]
    override: dict[str, Any] = {"spec": spec} if spec else {}
    metadata = {name: config[name] for name in _META_KEYS if name in config}
    if metadata:
        override["metadata"] = metadata
    pod_override = config.get("pod_override") or {}
    if not isinstance(pod_override, dict):
        raise KubernetesConfigError(f"{where}: executor_config['kubernetes']['pod_override'] "
                                    "must be a pod manifest (a mapping)")
    result: dict[str, Any] = deep_merge(override, pod_override)
    return result


def _env_list(env: Any, where: str) -> list[dict[str, Any]]:
    """``env`` as Kubernetes wants it: a mapping of plain values is turned into the list."""
    if isinstance(env, dict):
        return [{"name": str(name), "value": str(value)} for name, value in env.items()]
    if isinstance(env, list) and all(isinstance(item, dict) and "name" in item for item in env):
        return env
    raise KubernetesConfigError(f"{where}: env must be a mapping of names to values or a list "
                                "of {name: ..., value/valueFrom: ...} entries")


# ----------------------------------------------------------------------------- worker pods


def worker_pod(workload: TaskWorkload, settings: KubernetesSettings, scheduler_id: str,
               executor_config: dict[str, Any] | None = None,
               template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of the pod that runs ``workload``."""
    key = workload.key
    where = f"task {key.dag_id}.{key.task_id}"
    base = template if template is not None else load_template(settings)
    pod: dict[str, Any] = deep_merge(base, override_from_executor_config(
        executor_config or {}, where))
    metadata = pod.setdefault("metadata", {})
    metadata["name"] = pod_name("flow", key, workload.try_number)
    metadata["namespace"] = settings.namespace
    metadata["labels"] = {**{str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
                          **identity_labels(key, workload.try_number, WORKER),
                          SCHEDULER_LABEL: label_value(scheduler_id)}
    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                               **identity_annotations(key, workload.try_number),
                               WORKLOAD_ANNOTATION: workload.to_json()}
    spec = pod["spec"]
    spec["restartPolicy"] = "Never"
    container = worker_container(pod)
    container.setdefault("name", WORKER_CONTAINER)
    if not container.get("image"):
        if not settings.image:
            raise KubernetesConfigError(f"{where}: no image for the worker pod; set "
                                        "[kubernetes] image or an image in the pod template")
        container["image"] = settings.image
    container["command"] = [*settings.worker_command, "tasks", "run", "--workload",
                            workload.to_json()]
    container.pop("args", None)
    return pod
