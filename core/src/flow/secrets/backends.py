"""Secrets backends: where ``Connection.get`` and ``Variable.get`` look, in configured order.

``[core] secrets_backends`` names them (default ``environment,database``); plugins add more
through ``flow_secrets_backends``. A backend returns ``None`` for an id it does not know and
raises only when it cannot answer at all (a server down, a token that does not decrypt).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flow.secrets.connection import Connection

if TYPE_CHECKING:
    from flow.plugins import PluginManager

CONN_ENV_PREFIX = "FLOW_CONN_"
VAR_ENV_PREFIX = "FLOW_VAR_"


class BaseSecretsBackend:
    """What a secrets backend implements. ``name`` is set from its SecretsBackendSpec."""

    name: str = ""

    def get_connection(self, conn_id: str) -> Connection | None:
        return None

    def get_variable(self, key: str) -> str | None:
        return None

    def describe(self) -> str:
        """How the backend appears in a "not found" message."""
        return self.name or type(self).__name__


class EnvironmentSecretsBackend(BaseSecretsBackend):
    """``FLOW_CONN_<ID>`` (a URI or a JSON object) and ``FLOW_VAR_<KEY>``, ids upper-cased."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def get_connection(self, conn_id: str) -> Connection | None:
        env_var = CONN_ENV_PREFIX + conn_id.upper()
        value = self._environ.get(env_var)
        if value is None:
            return None
        text = value.strip()
        try:
            if text.startswith("{"):
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as err:
                    raise ValueError(f"not valid JSON: {err}") from None
                return Connection.from_dict(conn_id, data)
            return Connection.from_uri(text, conn_id=conn_id)
        except ValueError as err:
            raise ValueError(f"environment variable {env_var}: {err}") from None

    def get_variable(self, key: str) -> str | None:
        return self._environ.get(VAR_ENV_PREFIX + key.upper())

    def describe(self) -> str:
        return "environment (FLOW_CONN_<ID> / FLOW_VAR_<KEY>)"


class DatabaseSecretsBackend(BaseSecretsBackend):
    """The metadata database's ``connection`` and ``variable`` tables, Fernet-encrypted."""

    name = "database"

    def get_connection(self, conn_id: str) -> Connection | None:
        from flow.execution.channel import ask

        # In a supervised try, its supervisor reads it (see flow.execution.channel), and the
        # try's process does not load SQLAlchemy.
        asked, answer = ask("connection_get", conn_id=conn_id)
        if asked:
            return None if answer is None else Connection.from_dict(conn_id, answer)
        from flow.secrets import database

        return database.load_connection(conn_id)

    def get_variable(self, key: str) -> str | None:
        from flow.execution.channel import ask

        asked, answer = ask("variable_get", key=key)
        if asked:
            return None if answer is None else str(answer)
        from flow.secrets import database

        return database.load_variable(key)

    def describe(self) -> str:
        return "database (metadata database)"


def configured_backends(plugins: PluginManager | None = None) -> list[BaseSecretsBackend]:
    """One instance of each backend named in ``[core] secrets_backends``, in that order."""
    if plugins is None:
        from flow.plugins import current

        plugins = current()
    backends = []
    for name in plugins.config.getlist("core", "secrets_backends"):
        cls = plugins.secrets_backend(name).load()
        backend = cls()
        if not isinstance(backend, BaseSecretsBackend):
            raise TypeError(f"secrets backend {name!r} ({cls.__module__}.{cls.__qualname__}) "
                            "does not subclass flow.secrets.backends.BaseSecretsBackend")
        backend.name = name
        backends.append(backend)
    return backends
