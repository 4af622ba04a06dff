"""The secrets backend suite: connections (and variables) come back whole, missing ones as None.

The author overrides ``secrets_backend_factory``: a callable ``(connections, variables) ->
BaseSecretsBackend`` that returns a backend serving exactly the given
``dict[str, Connection]`` and ``dict[str, str]`` (write them where the backend reads: a test
vault, environment variables, the metadata database).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing.suites.base import ConformanceSuite, abstract_fixture, conformance

PASSWORD = "p@ss:w/rd?#1"  # noqa: S105 - characters that need quoting in a URI


class SecretsBackendConformance(ConformanceSuite):
    """Subclass and override ``secrets_backend_factory``; claim ``variables`` if it has them."""

    flow_suite = "secrets"

    secrets_backend_factory = abstract_fixture(
        "secrets_backend_factory",
        "return a callable (connections: dict[str, Connection], variables: dict[str, str]) -> "
        "a BaseSecretsBackend serving exactly those")

    @pytest.fixture
    def backend_with(self, secrets_backend_factory: Callable[..., Any], flow_plugins: Any
                     ) -> Callable[..., Any]:
        def make(connections: dict[str, Any] | None = None,
                 variables: dict[str, str] | None = None) -> Any:
            return secrets_backend_factory(connections or {}, variables or {})

        return make

    @staticmethod
    def _connection(conn_id: str = "suite_db") -> Any:
        from flow.secrets.connection import Connection

        return Connection(conn_id, "postgres", host="db.example.invalid", schema="analytics",
                          login="reader", password=PASSWORD, port=5432,
                          extra={"sslmode": "require"})

    @conformance(since="0.1")
    def test_a_connection_comes_back_with_every_field(self, backend_with: Any) -> None:
        backend = backend_with({"suite_db": self._connection()})
        found = backend.get_connection("suite_db")
        assert found is not None
        assert (found.conn_id, found.conn_type, found.host, found.schema, found.login,
                found.password, found.port) == ("suite_db", "postgres", "db.example.invalid",
                                                 "analytics", "reader", PASSWORD, 5432)
        assert found.extra_dejson == {"sslmode": "require"}

    @conformance(since="0.1")
    def test_a_missing_connection_is_none(self, backend_with: Any) -> None:
        backend = backend_with({"suite_db": self._connection()})
        assert backend.get_connection("no_such_connection") is None

    @conformance(since="0.1")
    def test_a_connection_repr_hides_the_password(self, backend_with: Any) -> None:
        found = backend_with({"suite_db": self._connection()}).get_connection("suite_db")
        assert PASSWORD not in repr(found)

    @conformance(since="0.1")
    def test_the_backend_is_a_base_secrets_backend(self, backend_with: Any) -> None:
        from flow.secrets.backends import BaseSecretsBackend

        assert isinstance(backend_with(), BaseSecretsBackend)

    @conformance("variables", since="0.1")
    def test_a_variable_comes_back_and_a_missing_one_is_none(self, backend_with: Any) -> None:
        backend = backend_with({}, {"suite_threshold": '{"limit": 3}'})
        assert backend.get_variable("suite_threshold") == '{"limit": 3}'
        assert backend.get_variable("no_such_variable") is None
