"""A Kubernetes API server and a "process kubelet" for flow-k8s's tests: what they model and
what they do not is in README.md beside this file."""

from .cluster import KubeCluster, KubeClusterError

__all__ = ["KubeCluster", "KubeClusterError"]
