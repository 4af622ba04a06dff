"""The plugin module the ``flow.plugins`` entry point names: only hookimpls and records.

Classes are named by import string and the CLI group is imported inside its hook, so loading the
plugin (every ``flow`` command does) never imports the Kubernetes client.
"""

from __future__ import annotations

from typing import Any

from flow import hookimpl
from flow.records import ConnectionField, ConnectionTypeSpec, ExecutorSpec, OperatorSpec

CONN_TYPE = "kubernetes"


@hookimpl
def flow_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("kubernetes", "flow_k8s.executor:KubernetesExecutor",
                         "One Kubernetes pod per try of a task instance.")]


@hookimpl
def flow_operators() -> list[OperatorSpec]:
    return [OperatorSpec("KubernetesPodOperator", "flow_k8s.operators:KubernetesPodOperator",
                         "Runs a container image as a pod; its log is the task's log.")]


@hookimpl
def flow_connection_types() -> list[ConnectionTypeSpec]:
    return [
        ConnectionTypeSpec(
            CONN_TYPE, "Kubernetes cluster", hook="flow_k8s.client:KubernetesHook",
            fields=(ConnectionField("host", "API server URL",
                                    placeholder="https://kubernetes.example:6443"),
                    ConnectionField("password", "Bearer token", sensitive=True),
                    ConnectionField("namespace", "Namespace", placeholder="default"),
                    ConnectionField("kubeconfig", "Kubeconfig file (instead of URL and token)"),
                    ConnectionField("context", "Kubeconfig context"),
                    ConnectionField("in_cluster", "In-cluster config (true/false)"),
                    ConnectionField("ca_cert", "CA certificate file"),
                    ConnectionField("verify_ssl", "Verify TLS (true/false)", placeholder="true")),
            description="A Kubernetes API server, for the KubernetesExecutor and the "
                        "KubernetesPodOperator."),
    ]


@hookimpl
def flow_cli(cli: Any) -> None:
    from flow_k8s.cli import k8s

    cli.add_command(k8s)
