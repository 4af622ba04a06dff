"""The KubernetesExecutor passes the executor suite, strictly, against the test API server:
every try is a pod whose container is a local `flow tasks run` process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flow.testing import ExecutorConformance, PluginPackageConformance
from flow.testing.environment import FlowEnvironment, isolated_flow_home


class TestKubernetesExecutor(ExecutorConformance):
    # Pods outlive the executor that made them, so a new instance adopts them by label.
    claims = {"cancel", "isolation", "timeouts", "parallelism", "adoption"}
    distribution = "flow-k8s"

    @pytest.fixture
    def flow_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
                 ) -> Iterator[FlowEnvironment]:
        with isolated_flow_home(tmp_path / "flow_home", monkeypatch, pg_url) as environment:
            yield environment

    @pytest.fixture
    def executor_factory(self, make_settings: Callable[..., Any]) -> Callable[[int], Any]:
        from flow_k8s.executor import KubernetesExecutor

        return lambda parallelism: KubernetesExecutor(parallelism=parallelism,
                                                      settings=make_settings())


class TestPackage(PluginPackageConformance):
    """flow-k8s passes flow's plugin package checks (`flow plugins verify flow-k8s` runs the
    same): its entry point loads in a strict plugin manager without importing what is heavy."""

    distribution = "flow-k8s"
    conformance_version = "0.1"
