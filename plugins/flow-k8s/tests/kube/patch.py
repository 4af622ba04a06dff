"""The three PATCH flavours the official client sends: JSON merge patch (RFC 7386), strategic
merge patch (lists with a merge key merge item by item, as the Kubernetes types declare), and
JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .meta import ApiError, Obj

# Field name -> the key its list items merge on, for the fields of the kinds this server holds.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort",
    "imagePullSecrets": "name", "conditions": "type", "containerStatuses": "name",
    "initContainerStatuses": "name", "ownerReferences": "uid", "addresses": "type",
    "hostAliases": "ip", "podIPs": "ip", "hostIPs": "ip",
}
# Lists of scalars that merge as sets rather than being replaced.
SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in SET_LISTS and isinstance(result.get(key), list):
            result[key] = result[key] + [v for v in value if v not in result[key]]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise ApiError(400, "BadRequest",
                           f"map: {item!r} does not contain declared merge key: {merge_key}")
        index = next((i for i, existing in enumerate(merged)
                      if existing.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def json_patch(target: Obj, operations: Any) -> Obj:
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    result = copy.deepcopy(target)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        parent, last = _resolve(result, path)
        if op in ("add", "replace"):
            value = copy.deepcopy(operation.get("value"))
            if isinstance(parent, list):
                position = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(position, value)
                else:
                    parent[position] = value
            else:
                if op == "replace" and last not in parent:
                    raise _unprocessable(f"replace operation does not apply: doc is missing "
                                         f"key: {path}")
                parent[last] = value
        elif op == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError) as missing:
                raise _unprocessable(f"remove operation does not apply: doc is missing "
                                     f"path: {path}") from missing
        elif op == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != operation.get("value"):
                raise _unprocessable(f"testing value {path} failed")
        else:
            raise ApiError(400, "BadRequest", f"json patch operation {op!r} is not supported")
    return result


def _resolve(document: Any, path: str) -> tuple[Any, str]:
    steps = [step.replace("~1", "/").replace("~0", "~") for step in path.split("/")[1:]]
    if not steps:
        raise _unprocessable("json patch path may not be empty")
    current = document
    for step in steps[:-1]:
        try:
            current = current[int(step)] if isinstance(current, list) else current[step]
        except (KeyError, IndexError, ValueError) as missing:
            raise _unprocessable(f"doc is missing path: {path}") from missing
    return current, steps[-1]


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                    f"request: {message}")
