"""The Kubernetes API client flow uses, from one of three sources, and the calls it makes.

``[kubernetes] conn_id`` (a flow connection of type ``kubernetes``: host and bearer token, or a
kubeconfig file and context, or in-cluster) wins; else ``in_cluster = true``; else the
kubeconfig file ``[kubernetes] kubeconfig`` (default ``~/.kube/config``) and ``context``.
Responses are read as plain JSON dicts, never as the client's models: a pod is handled the same
whether it came from a list, a watch event or a read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flow_k8s.settings import KubernetesConfigError, KubernetesSettings

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}


class KubernetesHook:
    """The hook of the ``kubernetes`` connection type: ``KubernetesHook(conn_id).core_v1()``."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    def api_client(self) -> Any:
        return client_from_connection(self.conn_id)

    def core_v1(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client())


def api_client(settings: KubernetesSettings) -> Any:
    """A ``kubernetes.client.ApiClient`` for the configured cluster."""
    from kubernetes import client

    config: Any = _config_module()

    if settings.conn_id:
        return client_from_connection(settings.conn_id)
    if settings.in_cluster:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    try:
        return config.new_client_from_config(config_file=settings.kubeconfig or None,
                                             context=settings.context or None)
    except (config.ConfigException, OSError) as err:
        where = settings.kubeconfig or "~/.kube/config"
        raise KubernetesConfigError(
            f"cannot load the kubeconfig {where}: {err}; set [kubernetes] kubeconfig, "
            "in_cluster = true or conn_id") from None


def client_from_connection(conn_id: str) -> Any:
    from kubernetes import client

    from flow import Connection  # type: ignore[attr-defined]  # the public, lazy facade

    config: Any = _config_module()

    connection = Connection.get(conn_id)
    extra = connection.extra_dejson
    if str(extra.get("in_cluster", "")).lower() in _TRUE:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    if extra.get("kubeconfig"):
        return config.new_client_from_config(config_file=str(extra["kubeconfig"]),
                                             context=extra.get("context") or None)
    if not connection.host:
        raise KubernetesConfigError(f"connection {conn_id!r} (kubernetes) needs a host (the API "
                                    "server URL), a kubeconfig or in_cluster = true")
    configuration = client.Configuration()
    host = str(connection.host)
    if "://" not in host:
        scheme = "https" if str(extra.get("verify_ssl", "true")).lower() in _TRUE else "http"
        host = f"{scheme}://{host}" + (f":{connection.port}" if connection.port else "")
    configuration.host = host
    if connection.password:
        configuration.api_key = {"authorization": f"Bearer {connection.password}"}
    if extra.get("ca_cert"):
        configuration.ssl_ca_cert = str(extra["ca_cert"])
    configuration.verify_ssl = str(extra.get("verify_ssl", "true")).lower() in _TRUE
    return client.ApiClient(configuration)


def namespace_of(settings: KubernetesSettings) -> str:
    """The namespace: the connection's ``namespace`` extra, else ``[kubernetes] namespace``."""
    if settings.conn_id:
        from flow import Connection  # type: ignore[attr-defined]  # the public, lazy facade

        connection = Connection.get(settings.conn_id)
        extra = connection.extra_dejson
        if extra.get("namespace"):
            return str(extra["namespace"])
    return settings.namespace


def _config_module() -> Any:
    """``kubernetes.config`` (its loaders are untyped)."""
    from kubernetes import config

    return config


class Pods:
    """The pod calls flow makes, on JSON dicts, with retries on connection errors."""

    def __init__(self, client: Any, namespace: str, retries: int = 5) -> None:
        from kubernetes import client as k8s

        self.client = client
        self.api = k8s.CoreV1Api(client)
        self.namespace = namespace
        self.retries = retries

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.api.create_namespaced_pod, self.namespace, body)

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.api.read_namespaced_pod, name, self.namespace)
        except Exception as err:
            if status_of(err) == 404:
                return None
            raise

    def list(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        """The pods ``selector`` matches and the list's resourceVersion."""
        data = self._json(self.api.list_namespaced_pod, self.namespace,
                          label_selector=selector)
        return list(data.get("items") or []), str(
            (data.get("metadata") or {}).get("resourceVersion") or "")

    def delete(self, name: str, grace_seconds: int | None = None) -> bool:
        """Delete pod ``name``; False if it was already gone."""
        try:
            self._json(self.api.delete_namespaced_pod, name, self.namespace,
                       grace_period_seconds=grace_seconds)
            return True
        except Exception as err:
            if status_of(err) == 404:
                return False
            raise

    def label(self, name: str, labels: dict[str, str]) -> dict[str, Any] | None:
        try:
            return self._json(self.api.patch_namespaced_pod, name, self.namespace,
                              {"metadata": {"labels": labels}})
        except Exception as err:
            if status_of(err) == 404:
                return None
            raise

    def _json(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            response = call(*args, _preload_content=False, **kwargs)
            try:
                data: dict[str, Any] = json.loads(response.data or b"{}")
            finally:
                response.release_conn()
            return data

        return retrying(once, self.retries)


def status_of(err: BaseException) -> int | None:
    """The HTTP status of a Kubernetes API error, else None."""
    status = getattr(err, "status", None)
    return status if isinstance(status, int) else None


def retrying(call: Callable[[], T], retries: int, first_delay: float = 0.2) -> T:
    """``call()``, again after a connection error or a 5xx/429 answer, up to ``retries``
    times with doubling delays; any other error at once."""
    delay = first_delay
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as err:
            status = status_of(err)
            transient = (status is None and _is_connection_error(err)) or status in {
                429, 500, 502, 503, 504}
            if not transient or attempt == retries:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def _is_connection_error(err: BaseException) -> bool:
    import urllib3

    return isinstance(err, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def describe_error(err: BaseException) -> str:
    """An API error as one line: status, reason and the server's message."""
    status = status_of(err)
    if status is None:
        return f"{type(err).__name__}: {err}"
    body = getattr(err, "body", None)
    message = ""
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:300]
    return f"HTTP {status} {getattr(err, 'reason', '')}: {message}".strip()
