"""The kinds the server knows: where they live in the URL space, and how each is defaulted and
validated on create and update the way the real API server does it."""

from __future__ import annotations

import base64
import binascii
import copy
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .meta import (
    ApiError,
    Invalid,
    Obj,
    check_dns_label,
    check_dns_subdomain,
    check_labels,
    check_qualified_key,
    timestamp,
)

QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[numkMGTPE])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
RESTART_POLICIES = ("Always", "OnFailure", "Never")


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    group: str  # "" for core
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    default: Callable[[Obj], None] = lambda obj: None
    validate: Callable[[Obj, Invalid], None] = lambda obj, errors: None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def new_metadata(obj: Obj, namespace: str | None) -> Obj:
    """Fills what the server owns in metadata on create."""
    meta: Obj = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        meta["name"] = meta["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
    if namespace is not None:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = timestamp()
    meta["generation"] = 1
    for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                         "selfLink", "managedFields"):
        meta.pop(server_owned, None)
    return meta


def validate_metadata(obj: Obj, errors: Invalid, *, label_name: bool = False) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        errors.required("metadata.name")
    elif label_name:
        check_dns_label(errors, "metadata.name", name)
    else:
        check_dns_subdomain(errors, "metadata.name", name)
    check_labels(errors, "metadata.labels", meta.get("labels"))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(value, str) for value in annotations.values()):
        errors.invalid("metadata.annotations", annotations, "must be a map of strings")
    else:
        for key in annotations:
            check_qualified_key(errors, "metadata.annotations", key)
        if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
            errors.invalid("metadata.annotations", "...", "may not be more than 262144 bytes")


# -- pods -------------------------------------------------------------------------------------

def default_container(container: Obj) -> None:
    image = container.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for item in container.get("env") or []:
        field_ref = (item.get("valueFrom") or {}).get("fieldRef")
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")


def qos_class(spec: Obj) -> str:
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    service_account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = service_account
    tolerations = spec.setdefault("tolerations", [])
    # The DefaultTolerationSeconds admission plugin adds these to every pod.
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == taint for t in tolerations):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        default_container(container)
    for volume in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if source in volume:
                volume[source].setdefault("defaultMode", 420)
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def validate_pod(pod: Obj, errors: Invalid) -> None:
    validate_metadata(pod, errors)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        errors.required("spec")
        return
    containers = spec.get("containers")
    if not containers:
        errors.required("spec.containers")
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            validate_container(container, f"spec.{group}[{index}]", names, errors)
    if spec.get("restartPolicy") not in RESTART_POLICIES:
        errors.invalid("spec.restartPolicy", spec.get("restartPolicy"),
                       "supported values: \"Always\", \"OnFailure\", \"Never\"")
    grace = spec.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 0:
        errors.invalid("spec.terminationGracePeriodSeconds", grace,
                       "must be greater than or equal to 0")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline < 1):
        errors.invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647")
    check_labels(errors, "spec.nodeSelector", spec.get("nodeSelector"))
    volume_names: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name", "")
        check_dns_label(errors, f"spec.volumes[{index}].name", name)
        if name in volume_names:
            errors.duplicate(f"spec.volumes[{index}].name", name)
        volume_names.add(name)


def validate_container(container: Obj, path: str, names: set[str], errors: Invalid) -> None:
    name = container.get("name")
    if not name:
        errors.required(f"{path}.name")
    else:
        check_dns_label(errors, f"{path}.name", name)
        if name in names:
            errors.duplicate(f"{path}.name", name)
        names.add(name)
    if not container.get("image"):
        errors.required(f"{path}.image")
    for field_name in ("command", "args"):
        value = container.get(field_name)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            errors.invalid(f"{path}.{field_name}", value, "must be a list of strings")
    for index, item in enumerate(container.get("env") or []):
        env_name = item.get("name", "")
        if not ENV_NAME.match(env_name):
            errors.invalid(f"{path}.env[{index}].name", env_name,
                           "a valid environment variable name must consist of alphabetic "
                           "characters, digits, '_', '-', or '.', and must not start with a digit")
        if "value" in item and "valueFrom" in item:
            errors.invalid(f"{path}.env[{index}].valueFrom", "",
                           "may not be specified when `value` is not empty")
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        for resource_name, quantity in (resources.get(section) or {}).items():
            if not isinstance(quantity, str) or not QUANTITY.match(quantity):
                errors.invalid(f"{path}.resources.{section}[{resource_name}]", quantity,
                               "quantities must match the regular expression "
                               "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def check_pod_update(old: Obj, new: Obj, errors: Invalid) -> None:
    """Only a container's image, activeDeadlineSeconds and added tolerations may change."""
    def mutable_stripped(spec: Obj) -> Obj:
        spec = copy.deepcopy(spec)
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            container.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    if mutable_stripped(old.get("spec", {})) != mutable_stripped(new.get("spec", {})):
        errors.forbidden("spec", "pod updates may not change fields other than "
                         "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                         "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                         "existing tolerations), `spec.terminationGracePeriodSeconds`")


# -- other kinds ------------------------------------------------------------------------------

def default_node(node: Obj) -> None:
    node.setdefault("spec", {})
    node.setdefault("status", {})


def default_namespace(namespace: Obj) -> None:
    namespace.setdefault("spec", {"finalizers": ["kubernetes"]})
    namespace["status"] = {"phase": "Active"}
    labels = namespace["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = namespace["metadata"]["name"]


def default_secret(secret: Obj) -> None:
    data = secret.setdefault("data", {}) or {}
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    secret["data"] = data
    secret.setdefault("type", "Opaque")


def validate_secret(secret: Obj, errors: Invalid) -> None:
    validate_metadata(secret, errors)
    for key, value in (secret.get("data") or {}).items():
        if not re.match(r"^[-._a-zA-Z0-9]+$", key):
            errors.invalid(f"data[{key}]", key, "a valid config key must consist of "
                           "alphanumeric characters, '-', '_' or '.'")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError):
            errors.invalid(f"data[{key}]", "<value>", "must be base64 encoded")


def validate_configmap(configmap: Obj, errors: Invalid) -> None:
    validate_metadata(configmap, errors)
    for key in list(configmap.get("data") or {}) + list(configmap.get("binaryData") or {}):
        if not re.match(r"^[-._a-zA-Z0-9]+$", key):
            errors.invalid(f"data[{key}]", key, "a valid config key must consist of "
                           "alphanumeric characters, '-', '_' or '.'")


def default_job(job: Obj) -> None:
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatedOrFailed")
    uid = job["metadata"]["uid"]
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    template_labels = template_meta.setdefault("labels", {})
    # The job controller's own labels tie the pods to their job.
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        template_labels[key] = uid
    for key in ("job-name", "batch.kubernetes.io/job-name"):
        template_labels[key] = job["metadata"]["name"]
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    spec.setdefault("manualSelector", False)
    pod_spec = template.setdefault("spec", {})
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        default_container(container)
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("schedulerName", "default-scheduler")
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    pod_spec.setdefault("securityContext", {})
    job["status"] = {}


def validate_job(job: Obj, errors: Invalid) -> None:
    validate_metadata(job, errors)
    if len(job["metadata"].get("name") or "") > 63:
        errors.invalid("metadata.name", job["metadata"]["name"], "must be no more than 63 "
                       "characters (it becomes the pods' job-name label)")
    spec = job.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
        errors.invalid("spec.template.spec.restartPolicy", pod_spec.get("restartPolicy"),
                       'supported values: "OnFailure", "Never"')
    if not pod_spec.get("containers"):
        errors.required("spec.template.spec.containers")
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod_spec.get(group) or []):
            validate_container(container, f"spec.template.spec.{group}[{index}]", names, errors)
    check_labels(errors, "spec.template.metadata.labels",
                 (template.get("metadata") or {}).get("labels"))
    if spec.get("completions") != 1 or spec.get("parallelism") != 1:
        raise ApiError(422, "Invalid", f'Job.batch "{job["metadata"].get("name")}" is invalid: '
                       "this test API server models only completions=1 and parallelism=1")


def validate_event(event: Obj, errors: Invalid) -> None:
    validate_metadata(event, errors)
    if not event.get("involvedObject"):
        errors.required("involvedObject")


RESOURCES: dict[str, ResourceType] = {
    rt.plural: rt for rt in (
        ResourceType("pods", "Pod", "", "v1", True, ("po",), True, default_pod, validate_pod),
        ResourceType("nodes", "Node", "", "v1", False, ("no",), True, default_node,
                     lambda obj, errors: validate_metadata(obj, errors)),
        ResourceType("namespaces", "Namespace", "", "v1", False, ("ns",), True,
                     default_namespace,
                     lambda obj, errors: validate_metadata(obj, errors, label_name=True)),
        ResourceType("secrets", "Secret", "", "v1", True, (), False, default_secret,
                     validate_secret),
        ResourceType("configmaps", "ConfigMap", "", "v1", True, ("cm",), False,
                     validate=validate_configmap),
        ResourceType("events", "Event", "", "v1", True, ("ev",), False,
                     validate=validate_event),
        ResourceType("jobs", "Job", "batch", "v1", True, (), True, default_job, validate_job),
    )
}
