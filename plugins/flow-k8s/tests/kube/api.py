"""The verbs on stored objects — create, get, list, replace, patch, delete — with the semantics
of the real API server: server-owned metadata, resourceVersion preconditions, status
subresources, graceful pod deletion, finalizers, and pods/binding."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from .meta import (
    ApiError,
    Invalid,
    Obj,
    bad_request,
    conflict,
    expired,
    labels_match,
    not_found,
    now,
    parse_field_selector,
    parse_label_selector,
    timestamp,
)
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import RESOURCES, ResourceType, check_pod_update, new_metadata
from .store import Key, Store

PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


def key_of(rt: ResourceType, namespace: str | None, name: str) -> Key:
    return (rt.plural, namespace or "" if rt.namespaced else "", name)


class Selection:
    """What a list or watch asked for: namespace, labelSelector, fieldSelector."""

    def __init__(self, rt: ResourceType, namespace: str | None, label_selector: str | None,
                 field_selector: str | None) -> None:
        self.rt = rt
        self.namespace = namespace
        self.labels = parse_label_selector(label_selector)
        self.fields = parse_field_selector(field_selector, rt.kind)

    def matches(self, obj: Obj) -> bool:
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and all(match(obj) for match in self.fields)


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- create / read ----------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Obj,
               dry_run: bool = False) -> Obj:
        self._check_kind(rt, body)
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta_namespace = (obj.get("metadata") or {}).get("namespace")
        if rt.namespaced and meta_namespace and meta_namespace != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        new_metadata(obj, namespace if rt.namespaced else None)
        rt.default(obj)
        errors = Invalid(rt.kind, obj["metadata"].get("name") or "", rt.group)
        rt.validate(obj, errors)
        errors.raise_if_any()
        if dry_run:
            return obj
        with self.store.changed:
            if rt.namespaced:
                self.ensure_namespace(namespace or "default")
                terminating = self.store.get(("namespaces", "", namespace or "default"))
                if terminating is not None and terminating["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden", f'{self._resource_name(rt)} '
                                   f'"{obj["metadata"]["name"]}" is forbidden: unable to create '
                                   f"new content in namespace {namespace} because it is being "
                                   "terminated", details={"name": obj["metadata"]["name"],
                                                          "kind": rt.plural})
            key = key_of(rt, namespace, obj["metadata"]["name"])
            if self.store.get(key) is not None:
                raise ApiError(409, "AlreadyExists",
                               f'{self._resource_name(rt)} "{key[2]}" already exists',
                               details={"name": key[2], "group": rt.group, "kind": rt.plural})
            return self.store.put(rt.plural, obj, created=True)

    def ensure_namespace(self, name: str) -> None:
        """Namespaces come into being on first use, so tests need not create them."""
        if self.store.get(("namespaces", "", name)) is None:
            namespace: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            new_metadata(namespace, None)
            RESOURCES["namespaces"].default(namespace)
            self.store.put("namespaces", namespace, created=True)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(key_of(rt, namespace, name))
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def list(self, selection: Selection, resource_version: str | None,
             resource_version_match: str | None, limit: int | None,
             continue_token: str | None) -> Obj:
        if resource_version and resource_version != "0":
            # Upstream serves any list "not older than" the version from its cache; only an
            # exact version that history no longer holds is gone.
            version = _parse_rv(resource_version)
            if resource_version_match == "Exact":
                try:
                    self.store.check_not_expired(version)
                except ApiError as too_old:
                    raise expired("The resourceVersion for the provided list is too old.") \
                        from too_old
        with self.store.changed:
            items = [obj for obj in self.store.items(selection.rt.plural, selection.namespace)
                     if selection.matches(obj)]
            current = self.store.resource_version
        start = 0
        if continue_token:
            start = self._decode_continue(continue_token)
        metadata: Obj = {"resourceVersion": str(current)}
        page = items[start:]
        if limit and len(page) > limit:
            page = page[:limit]
            next_start = start + limit
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"rv": current, "start": next_start}).encode()).decode()
            metadata["remainingItemCount"] = len(items) - next_start
        for item in page:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {"apiVersion": selection.rt.api_version, "kind": selection.rt.list_kind,
                "metadata": metadata, "items": page}

    def _decode_continue(self, token: str) -> int:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            self.store.check_not_expired(int(decoded["rv"]))
            return int(decoded["start"])
        except ApiError as too_old:
            raise expired("The provided continue parameter is too old to display a consistent "
                          "list result. You can start a new list without the continue "
                          "parameter.") from too_old
        except (ValueError, KeyError, TypeError) as garbled:
            raise bad_request(f"invalid continue token {token!r}") from garbled

    # -- update -----------------------------------------------------------------------------

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: Obj,
                subresource: str | None) -> Obj:
        self._check_kind(rt, body)
        with self.store.changed:
            current = self.get(rt, namespace, name)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if not wanted and rt.plural == "pods" and subresource is None:
                errors = Invalid(rt.kind, name, rt.group)
                errors.invalid("metadata.resourceVersion", 0, "must be specified for an update")
                errors.raise_if_any()
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            return self._update(rt, current, copy.deepcopy(body), subresource)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str,
              patch: Any, subresource: str | None) -> Obj:
        patcher = PATCHERS.get(content_type.split(";")[0].strip())
        if patcher is None:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media "
                           f"types include: {', '.join(PATCHERS)}")
        with self.store.changed:
            current = self.get(rt, namespace, name)
            patched = patcher(current, patch)
            if not isinstance(patched, dict):
                raise bad_request("the patch does not produce an object")
            wanted = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            return self._update(rt, current, patched, subresource)

    def _update(self, rt: ResourceType, current: Obj, new: Obj,
                subresource: str | None) -> Obj:
        name = current["metadata"]["name"]
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(f'the name of the object ({meta.get("name")}) does not match '
                              f"the name on the URL ({name})")
        if subresource == "status":
            # The status subresource changes status only (and nothing of metadata but labels
            # and annotations would matter here; the real server ignores the rest too).
            updated = copy.deepcopy(current)
            updated["status"] = new.get("status") or {}
        else:
            updated = new
            updated["apiVersion"], updated["kind"] = rt.api_version, rt.kind
            for owned in ("uid", "creationTimestamp", "namespace", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "generateName"):
                if owned in current["metadata"]:
                    meta[owned] = current["metadata"][owned]
                else:
                    meta.pop(owned, None)
            meta["name"] = name
            if rt.has_status:
                updated["status"] = current.get("status")
            if rt.plural == "secrets":
                RESOURCES["secrets"].default(updated)
            errors = Invalid(rt.kind, name, rt.group)
            rt.validate(updated, errors)
            if rt.plural == "pods":
                check_pod_update(current, updated, errors)
            errors.raise_if_any()
            if updated.get("spec") != current.get("spec"):
                meta["generation"] = current["metadata"].get("generation", 1) + 1
        if _without_rv(updated) == _without_rv(current):
            return current  # a no-op update does not bump the resourceVersion, as upstream
        self.store.put(rt.plural, updated, created=False)
        return self._finish_deletion(rt, updated)

    # -- delete -----------------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str | None, name: str, options: Obj) -> Obj:
        if rt.plural == "namespaces" and name in ("default", "kube-system", "kube-public"):
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace '
                           "may not be deleted", details={"name": name, "kind": "namespaces"})
        with self.store.changed:
            obj = self.get(rt, namespace, name)
            preconditions = options.get("preconditions") or {}
            for field_name in ("uid", "resourceVersion"):
                wanted = preconditions.get(field_name)
                if wanted and wanted != obj["metadata"].get(field_name):
                    raise ApiError(409, "Conflict",
                                   f"Operation cannot be fulfilled on {rt.plural} \"{name}\": "
                                   f"Precondition failed: {field_name} in precondition: "
                                   f"{wanted}, {field_name} in object meta: "
                                   f"{obj['metadata'].get(field_name)}",
                                   details={"name": name, "group": rt.group, "kind": rt.plural})
            grace = options.get("gracePeriodSeconds")
            meta = obj["metadata"]
            if rt.plural == "pods":
                grace = self._pod_grace(obj, grace)
            else:
                grace = 0
            already = meta.get("deletionGracePeriodSeconds")
            if already is not None and grace >= already:
                return obj  # a second delete may only shorten the grace period
            meta["deletionGracePeriodSeconds"] = grace
            meta["deletionTimestamp"] = timestamp(now() + dt.timedelta(seconds=grace))
            self._cascade(rt, obj, options.get("propagationPolicy"))
            if rt.plural == "namespaces":
                return self._terminate_namespace(obj)
            if grace == 0 and not meta.get("finalizers"):
                return self._remove(rt, obj)
            self.store.put(rt.plural, obj, created=False)
            return obj

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        removed = self.store.remove(rt.plural, key_of(rt, meta.get("namespace"), meta["name"]))
        if rt.plural == "pods":
            self._finish_namespace(meta["namespace"])
        return removed

    @staticmethod
    def _pod_grace(pod: Obj, requested: int | None) -> int:
        """Unscheduled and finished pods go at once; a running one waits for its kubelet."""
        if not pod["spec"].get("nodeName") or pod["status"].get("phase") in ("Succeeded",
                                                                             "Failed"):
            return 0
        if requested is None:
            requested = pod["spec"].get("terminationGracePeriodSeconds", 30)
        return max(int(requested), 0)

    def _cascade(self, rt: ResourceType, owner: Obj, policy: str | None) -> None:
        # batch/v1 jobs orphan their pods unless told otherwise, as upstream does for
        # compatibility; everything else deletes dependents in the background.
        policy = policy or ("Orphan" if rt.plural == "jobs" else "Background")
        uid = owner["metadata"]["uid"]
        for pod in self.store.items("pods", owner["metadata"].get("namespace")):
            references = pod["metadata"].get("ownerReferences") or []
            if not any(reference.get("uid") == uid for reference in references):
                continue
            if policy == "Orphan":
                pod["metadata"]["ownerReferences"] = [
                    reference for reference in references if reference.get("uid") != uid]
                self.store.put("pods", pod, created=False)
            elif pod["metadata"].get("deletionTimestamp") is None:
                self.delete(RESOURCES["pods"], pod["metadata"]["namespace"],
                            pod["metadata"]["name"], {})

    def _terminate_namespace(self, namespace: Obj) -> Obj:
        """A deleted namespace is Terminating, refusing new objects, until its pods are gone;
        then it goes with whatever else it still holds."""
        namespace["status"] = {"phase": "Terminating"}
        self.store.put("namespaces", namespace, created=False)
        name = namespace["metadata"]["name"]
        for rt in RESOURCES.values():
            if rt.namespaced:
                for obj in self.store.items(rt.plural, name):
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.delete(rt, name, obj["metadata"]["name"],
                                    {"propagationPolicy": "Background"})
        self._finish_namespace(name)
        return namespace

    def _finish_namespace(self, name: str) -> None:
        namespace = self.store.get(("namespaces", "", name))
        if namespace is None or not namespace["metadata"].get("deletionTimestamp") or \
                self.store.items("pods", name):
            return
        for rt in RESOURCES.values():
            if rt.namespaced:
                for obj in self.store.items(rt.plural, name):
                    self.store.remove(rt.plural, key_of(rt, name, obj["metadata"]["name"]))
        self.store.remove("namespaces", ("namespaces", "", name))

    def _finish_deletion(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and \
                meta.get("deletionGracePeriodSeconds") == 0:
            return self._remove(rt, obj)
        return obj

    def delete_collection(self, selection: Selection, options: Obj) -> Obj:
        deleted = []
        with self.store.changed:
            for obj in self.store.items(selection.rt.plural, selection.namespace):
                if selection.matches(obj):
                    deleted.append(self.delete(selection.rt, obj["metadata"].get("namespace"),
                                               obj["metadata"]["name"], options))
        return {"apiVersion": selection.rt.api_version, "kind": selection.rt.list_kind,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted}

    # -- pods/binding -----------------------------------------------------------------------

    def bind(self, namespace: str, name: str, binding: Obj) -> Obj:
        target = binding.get("target") or {}
        node = target.get("name")
        if not node:
            errors = Invalid("Binding", name)
            errors.required("target.name")
            errors.raise_if_any()
        with self.store.changed:
            pod = self.get(RESOURCES["pods"], namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding '
                               f'"{name}": pod {name} is being deleted, cannot be assigned to a '
                               "host")
            if pod["spec"].get("nodeName"):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding '
                               f'"{name}": pod {name} is already assigned to node '
                               f'"{pod["spec"]["nodeName"]}"')
            pod["spec"]["nodeName"] = node
            conditions = [c for c in pod["status"].get("conditions") or []
                          if c["type"] != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": timestamp()})
            pod["status"]["conditions"] = conditions
            self.store.put("pods", pod, created=False)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _check_kind(rt: ResourceType, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request(f"the body must be a {rt.kind} object")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind of the object ({kind}) does not match the resource "
                              f"({rt.plural}, kind {rt.kind})")

    @staticmethod
    def _resource_name(rt: ResourceType) -> str:
        return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError as garbled:
        raise bad_request(f"invalid resource version: {text!r}") from garbled


def _without_rv(obj: Obj) -> Obj:
    stripped = copy.deepcopy(obj)
    stripped["metadata"].pop("resourceVersion", None)
    return stripped
