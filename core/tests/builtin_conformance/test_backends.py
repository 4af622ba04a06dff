"""The builtin XCom and secrets backends pass their suites, strictly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import SecretsBackendConformance, XComBackendConformance


class TestDatabaseXComBackend(XComBackendConformance):
    claims: set[str] = set()  # payloads live in the metadata database, capped by max_xcom_size
    distribution = "flow-core"

    @pytest.fixture
    def xcom_backend_factory(self) -> Callable[[], Any]:
        from flow.execution.xcom import DatabaseXComBackend

        return DatabaseXComBackend


class TestEnvironmentSecretsBackend(SecretsBackendConformance):
    claims = {"variables"}
    distribution = "flow-core"

    @pytest.fixture
    def secrets_backend_factory(self) -> Callable[..., Any]:
        from flow.secrets.backends import EnvironmentSecretsBackend

        def make(connections: dict[str, Any], variables: dict[str, str]) -> Any:
            environ = {f"FLOW_CONN_{conn_id.upper()}": connection.get_uri()
                       for conn_id, connection in connections.items()}
            environ.update({f"FLOW_VAR_{key.upper()}": value for key, value in variables.items()})
            return EnvironmentSecretsBackend(environ)

        return make


class TestDatabaseSecretsBackend(SecretsBackendConformance):
    claims = {"variables"}
    distribution = "flow-core"

    @pytest.fixture
    def secrets_backend_factory(self) -> Callable[..., Any]:
        from flow.secrets import database
        from flow.secrets.backends import DatabaseSecretsBackend

        def make(connections: dict[str, Any], variables: dict[str, str]) -> Any:
            for connection in connections.values():
                database.save_connection(connection)
            for key, value in variables.items():
                database.save_variable(key, value)
            return DatabaseSecretsBackend()

        return make
