"""The `kube_cluster` fixture: a fresh API server and kubelet for each test, which must leave
no pod behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import KubeCluster

LEFTOVER_TIMEOUT = 15.0


@pytest.fixture
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A cluster of one node, its kubeconfig at `kube_cluster.kubeconfig`.

    After the test, every pod must be gone (pods still terminating get LEFTOVER_TIMEOUT
    seconds); otherwise the test errors in teardown, naming the pods left. The server, the
    kubelet and every container process are stopped either way.
    """
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    cluster.start()
    try:
        yield cluster
        cluster.wait_for_no_pods(LEFTOVER_TIMEOUT)
    finally:
        cluster.stop()
