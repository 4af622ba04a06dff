"""What every object and request shares: Status errors, timestamps, names, label and field
selectors, with the syntax and messages of the real API server."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class ApiError(Exception):
    """An error answered as a `Status` object with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Failure", "message": self.message, "reason": self.reason,
                     "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(404, "NotFound", f'{resource} "{name}" not found',
                    details={"name": name, "group": group, "kind": kind})


def already_exists(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists',
                    details={"name": name, "group": group, "kind": kind})


def conflict(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    details={"name": name, "group": group, "kind": kind})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass
class Invalid:
    """Collects field errors; `raise_if_any` answers them as one 422 Invalid Status."""

    kind: str
    name: str
    group: str = ""
    causes: list[Obj] = field(default_factory=list)

    def required(self, path: str) -> None:
        self.causes.append({"reason": "FieldValueRequired", "message": "Required value",
                            "field": path})

    def invalid(self, path: str, value: Any, why: str) -> None:
        self.causes.append({"reason": "FieldValueInvalid",
                            "message": f"Invalid value: {value!r}: {why}", "field": path})

    def duplicate(self, path: str, value: Any) -> None:
        self.causes.append({"reason": "FieldValueDuplicate",
                            "message": f"Duplicate value: {value!r}", "field": path})

    def forbidden(self, path: str, why: str) -> None:
        self.causes.append({"reason": "FieldValueForbidden", "message": f"Forbidden: {why}",
                            "field": path})

    def raise_if_any(self) -> None:
        if not self.causes:
            return
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in self.causes)
        resource = f"{self.kind}.{self.group}" if self.group else self.kind
        listed = f"[{summary}]" if len(self.causes) > 1 else summary
        raise ApiError(422, "Invalid", f'{resource} "{self.name}" is invalid: {listed}',
                       details={"name": self.name, "group": self.group, "kind": self.kind,
                                "causes": self.causes})


def stop_with_parent() -> None:
    """SIGTERMs this process once the process that started it is gone, so that a test run
    killed outright (a pytest-timeout in thread mode, a kill -9) leaves no cluster behind."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(moment: dt.datetime | None = None) -> str:
    """RFC 3339 in whole seconds, as metav1.Time serializes."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_dns_subdomain(errors: Invalid, path: str, value: str) -> None:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        errors.invalid(path, value, "a lowercase RFC 1123 subdomain must consist of lower case "
                       "alphanumeric characters, '-' or '.', and must start and end with an "
                       "alphanumeric character")


def check_dns_label(errors: Invalid, path: str, value: str) -> None:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        errors.invalid(path, value, "a lowercase RFC 1123 label must consist of lower case "
                       "alphanumeric characters or '-', and must start and end with an "
                       "alphanumeric character (at most 63 characters)")


def check_qualified_key(errors: Invalid, path: str, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errors.invalid(path, key, "prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        errors.invalid(path, key, "name part must consist of alphanumeric characters, '-', '_' "
                       "or '.', and must start and end with an alphanumeric character "
                       "(at most 63 characters)")


def check_labels(errors: Invalid, path: str, labels: Any) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        errors.invalid(path, labels, "must be a map of strings")
        return
    for key, value in labels.items():
        check_qualified_key(errors, f"{path}", key)
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.invalid(f"{path}", value, "a valid label value must be an empty string or "
                           "consist of alphanumeric characters, '-', '_' or '.', and must start "
                           "and end with an alphanumeric character (at most 63 characters)")


# -- label selectors --------------------------------------------------------------------------

Requirement = Callable[[Mapping[str, str]], bool]

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside parentheses: `a in (x,y),b` is two requirements."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    requirements: list[Requirement] = []
    for part in _split_top_level(text or ""):
        requirements.append(_label_requirement(part))
    return requirements


def _label_requirement(part: str) -> Requirement:
    bad = bad_request(f"unable to parse requirement: invalid label selector {part!r}")
    if match := _SET_REQUIREMENT.match(part):
        key, operator, raw = match.groups()
        values = {value.strip() for value in raw.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for operator in ("!=", "==", "="):
        if operator in part:
            key, value = (side.strip() for side in part.split(operator, 1))
            if not key or " " in key:
                raise bad
            if operator == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if part.startswith("!"):
        key = part[1:].strip()
        if not key or " " in key:
            raise bad
        return lambda labels: key not in labels
    if " " in part or "(" in part:
        raise bad
    return lambda labels: part in labels


def labels_match(requirements: list[Requirement], obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(requirement(labels) for requirement in requirements)


# -- field selectors --------------------------------------------------------------------------

FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "spec.unschedulable": ("spec", "unschedulable"),
    "type": ("type",),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "reason": ("reason",),
}


def parse_field_selector(text: str | None, kind: str) -> list[Callable[[Obj], bool]]:
    requirements: list[Callable[[Obj], bool]] = []
    for part in _split_top_level(text or ""):
        for operator in ("!=", "==", "="):
            if operator in part:
                path, value = (side.strip() for side in part.split(operator, 1))
                break
        else:
            raise bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        if path not in FIELD_PATHS:
            raise bad_request(f'field label not supported: {path}')
        requirements.append(_field_requirement(FIELD_PATHS[path], value, operator == "!="))
    return requirements


def _field_requirement(path: tuple[str, ...], value: str,
                       negate: bool) -> Callable[[Obj], bool]:
    def matches(obj: Obj) -> bool:
        current: Any = obj
        for step in path:
            current = current.get(step) if isinstance(current, dict) else None
        if isinstance(current, bool):
            current = str(current).lower()
        actual = "" if current is None else str(current)
        return (actual == value) != negate
    return matches
