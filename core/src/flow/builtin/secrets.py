"""Builtin plugin: environment and database secrets backends, generic connection types."""

from __future__ import annotations

from flow.hookspecs import hookimpl
from flow.records import ConnectionField, ConnectionTypeSpec, SecretsBackendSpec

# Import strings: loading this plugin must not import SQLAlchemy or urllib.
_HOOKS = "flow.secrets.hooks:"

_HOST_FIELDS = (
    ConnectionField("host", "Host"),
    ConnectionField("port", "Port"),
    ConnectionField("schema", "Schema / database"),
    ConnectionField("login", "Login"),
    ConnectionField("password", "Password", sensitive=True),
)


@hookimpl
def flow_secrets_backends() -> list[SecretsBackendSpec]:
    return [
        SecretsBackendSpec("environment", "flow.secrets.backends:EnvironmentSecretsBackend",
                           "FLOW_CONN_<ID> and FLOW_VAR_<KEY> environment variables."),
        SecretsBackendSpec("database", "flow.secrets.backends:DatabaseSecretsBackend",
                           "The metadata database, Fernet-encrypted."),
    ]


@hookimpl
def flow_connection_types() -> list[ConnectionTypeSpec]:
    return [
        ConnectionTypeSpec("generic", "Generic", fields=_HOST_FIELDS),
        ConnectionTypeSpec("http", "HTTP", hook=_HOOKS + "HttpHook", fields=_HOST_FIELDS),
        ConnectionTypeSpec("postgres", "PostgreSQL", hook=_HOOKS + "SqlAlchemyHook",
                           fields=_HOST_FIELDS),
        ConnectionTypeSpec("mysql", "MySQL / MariaDB", hook=_HOOKS + "SqlAlchemyHook",
                           fields=_HOST_FIELDS),
        ConnectionTypeSpec("sqlite", "SQLite", hook=_HOOKS + "SqlAlchemyHook",
                           fields=(ConnectionField("host", "Path"),)),
    ]
