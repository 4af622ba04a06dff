"""The Celery executor passes the executor suite, strictly, on Redis and on RabbitMQ, with real
``flow celery worker`` processes and PostgreSQL as the metadata database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Workers, session_postgres_url

from flow.testing import ExecutorConformance, PluginPackageConformance
from flow.testing.databases import TestDatabases


class _CeleryConformance(ExecutorConformance):
    # Every capability: each try runs in a supervised child of a warm pool process; a revoke
    # stops it; the Celery task id of a try is fixed, so a new executor adopts it.
    claims = {"cancel", "isolation", "timeouts", "parallelism", "adoption"}
    distribution = "flow-celery"
    broker = "redis"

    def database_url(self) -> str | None:
        return session_postgres_url()

    @pytest.fixture(autouse=True)
    def _empty_database(self, postgres_url: str, _databases: TestDatabases) -> Iterator[None]:
        yield
        _databases.empty(postgres_url)

    @pytest.fixture
    def executor_factory(self, flow_env: Any, celery_env: dict[str, str],
                         workers: Workers) -> Callable[[int], Any]:
        from flow_celery.executor import CeleryExecutor

        def make(parallelism: int) -> Any:
            # Started on first use: the worker takes the test's environment as it is then
            # (a connection the test sets in FLOW_CONN_* reaches the tries).
            if not workers.processes:
                workers.start(1, concurrency=2)
            return CeleryExecutor(parallelism=parallelism)

        return make


class TestCeleryExecutorOnRedis(_CeleryConformance):
    broker = "redis"


class TestCeleryExecutorOnRabbitMQ(_CeleryConformance):
    broker = "rabbitmq"


class TestPackage(PluginPackageConformance):
    """flow-celery passes flow's plugin package checks (`flow plugins verify flow-celery` runs the
    same): its entry point loads in a strict plugin manager without importing what is heavy."""

    distribution = "flow-celery"
    conformance_version = "0.1"
