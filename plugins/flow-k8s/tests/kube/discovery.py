"""The discovery documents (`/version`, `/api`, `/apis`, ...) the client and tools may ask
for before they talk to a resource."""

from __future__ import annotations

from .meta import Obj
from .resources import RESOURCES

VERSION: Obj = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-flow-test", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
    "compiler": "gc", "platform": "linux/amd64",
}

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource_list(group: str) -> Obj:
    resources: list[Obj] = []
    for rt in RESOURCES.values():
        if rt.group != group:
            continue
        resources.append({"name": rt.plural, "singularName": rt.kind.lower(),
                          "namespaced": rt.namespaced, "kind": rt.kind, "verbs": _VERBS,
                          "shortNames": list(rt.short_names)})
        if rt.has_status:
            resources.append({"name": f"{rt.plural}/status", "singularName": "",
                              "namespaced": rt.namespaced, "kind": rt.kind,
                              "verbs": ["get", "patch", "update"]})
    if group == "":
        resources += [
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
             "verbs": ["get"]},
            {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding",
             "verbs": ["create"]},
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/v1" if group else "v1", "resources": resources}


def _group(name: str) -> Obj:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def document(path: str) -> Obj | None:
    path = path.rstrip("/")
    if path == "/version":
        return VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "127.0.0.1"}]}
    if path == "/api/v1":
        return _resource_list("")
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group("batch")]}
    if path == "/apis/batch":
        return {"kind": "APIGroup", "apiVersion": "v1", **_group("batch")}
    if path == "/apis/batch/v1":
        return _resource_list("batch")
    return None
