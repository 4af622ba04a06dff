"""A container's environment as the kubelet builds it: `env` (value, valueFrom secretKeyRef /
configMapKeyRef / fieldRef / resourceFieldRef), `envFrom`, and `$(VAR)` expansion."""

from __future__ import annotations

import base64
import re

from .client import ApiCallError, Client
from .meta import Obj

_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class ConfigError(Exception):
    """The container cannot be created yet: CreateContainerConfigError, as upstream."""


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` becomes VAR's value when VAR is defined, `$$` becomes `$`."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _REFERENCE.sub(replace, text)


class EnvironmentBuilder:
    def __init__(self, client: Client, pod: Obj) -> None:
        self.client = client
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self._cache: dict[tuple[str, str], Obj | None] = {}

    def build(self, container: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            env.update(self._env_from(source))
        for item in container.get("env") or []:
            if "valueFrom" in item:
                value = self._value_from(item["name"], item["valueFrom"])
                if value is None:
                    continue
            else:
                value = expand(item.get("value") or "", env)
            env[item["name"]] = value
        return env

    def _object(self, plural: str, name: str) -> Obj | None:
        if (plural, name) not in self._cache:
            try:
                self._cache[plural, name] = self.client.request(
                    "GET", f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
            except ApiCallError as error:
                if error.code != 404:
                    raise
                self._cache[plural, name] = None
        return self._cache[plural, name]

    def _data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        obj = self._object(plural, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        if kind == "secret":
            return {key: base64.b64decode(value).decode(errors="replace")
                    for key, value in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    def _env_from(self, source: Obj) -> dict[str, str]:
        prefix = source.get("prefix") or ""
        for kind, field_name in (("secret", "secretRef"), ("configmap", "configMapRef")):
            reference = source.get(field_name)
            if reference:
                data = self._data(kind, reference["name"], bool(reference.get("optional")))
                return {prefix + key: value for key, value in (data or {}).items()}
        return {}

    def _value_from(self, name: str, value_from: Obj) -> str | None:
        for kind, field_name in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
            reference = value_from.get(field_name)
            if reference:
                optional = bool(reference.get("optional"))
                data = self._data(kind, reference["name"], optional)
                if data is None:
                    return None
                if reference["key"] not in data:
                    if optional:
                        return None
                    raise ConfigError(f"couldn't find key {reference['key']} in {kind.title()} "
                                      f"{self.namespace}/{reference['name']}")
                return data[reference["key"]]
        if "fieldRef" in value_from:
            return self._field(value_from["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in value_from:
            return self._resource_field(value_from["resourceFieldRef"])
        raise ConfigError(f"env {name}: valueFrom has no source this kubelet models")

    def _field(self, path: str) -> str:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        if match := re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path):
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        values: dict[str, str] = {
            "metadata.name": str(meta["name"]), "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1", "status.hostIPs": "127.0.0.1",
        }
        if path not in values:
            raise ConfigError(f"unsupported fieldPath: {path}")
        return values[path]

    def _resource_field(self, reference: Obj) -> str:
        container_name = reference.get("containerName")
        containers = self.pod["spec"]["containers"]
        container = next((c for c in containers if c["name"] == container_name), containers[0])
        section, _, resource = reference["resource"].partition(".")
        value = ((container.get("resources") or {}).get(section) or {}).get(resource)
        return str(value) if value is not None else "0"
