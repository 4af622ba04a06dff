"""Hooks: the classes that use a connection. ``BaseHook.get_connection(conn_id)`` is how an
operator reads one; a hook with ``test_connection()`` lets ``flow connections test`` check it.

The builtin connection types name these hooks in ``flow.builtin.secrets``: SQL databases through
SQLAlchemy (postgres, mysql, sqlite) and HTTP through urllib.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import ClassVar

from flow.secrets.connection import Connection


class BaseHook:
    """A hook holds a conn_id and reads the connection when it needs it."""

    conn_type: ClassVar[str] = ""

    def __init__(self, conn_id: str | None = None, *, connection: Connection | None = None):
        if conn_id is None and connection is None:
            raise ValueError(f"{type(self).__name__} needs a conn_id or a connection")
        self._connection = connection
        self.conn_id = conn_id or (connection.conn_id if connection else "")

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        return Connection.get(conn_id)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.conn_id)
        return self._connection

    def test_connection(self) -> tuple[bool, str]:
        """(reachable, message). Hooks that can check their system override this."""
        raise NotImplementedError(f"{type(self).__name__} cannot test a connection")


_SQLALCHEMY_DRIVERS = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
                       "sqlite": "sqlite"}


class SqlAlchemyHook(BaseHook):
    """A SQL database reached through SQLAlchemy (postgres, mysql, sqlite)."""

    def sqlalchemy_url(self) -> str:
        from sqlalchemy.engine import URL

        conn = self.connection
        driver = _SQLALCHEMY_DRIVERS.get(conn.conn_type)
        if driver is None:
            raise ValueError(f"connection {conn.conn_id!r}: conn_type {conn.conn_type!r} is not "
                             f"a SQL database flow knows ({', '.join(_SQLALCHEMY_DRIVERS)})")
        if driver == "sqlite":
            return f"sqlite:///{conn.host or conn.schema or ':memory:'}"
        url = URL.create(driver, username=conn.login, password=conn.password, host=conn.host,
                         port=conn.port, database=conn.schema)
        return url.render_as_string(hide_password=False)

    def test_connection(self) -> tuple[bool, str]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.sqlalchemy_url(), pool_pre_ping=False)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as err:
            return False, f"{type(err).__name__}: {_first_line(err)}"
        finally:
            engine.dispose()
        return True, f"connected to {engine.url.render_as_string(hide_password=True)}"


class HttpHook(BaseHook):
    """An HTTP service: ``host`` (may include the scheme), ``port``, ``schema`` as the path."""

    timeout: ClassVar[float] = 10.0

    def base_url(self) -> str:
        conn = self.connection
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.extra_dejson.get('scheme', 'http')}://{host}"
        if conn.port:
            host = f"{host.rstrip('/')}:{conn.port}"
        if conn.schema:
            host = f"{host.rstrip('/')}/{conn.schema.lstrip('/')}"
        return host

    def test_connection(self) -> tuple[bool, str]:
        url = self.base_url()
        if not url.startswith(("http://", "https://")):
            return False, f"{url}: not an http(s) URL"
        for method in ("HEAD", "GET"):
            request = urllib.request.Request(url, method=method)  # noqa: S310 - scheme checked
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    return True, f"{method} {url}: HTTP {response.status}"
            except urllib.error.HTTPError as err:
                if err.code == 405 and method == "HEAD":
                    continue  # some servers refuse HEAD; GET tells the truth
                return err.code < 500, f"{method} {url}: HTTP {err.code}"
            except (urllib.error.URLError, OSError, ValueError) as err:
                return False, f"{method} {url}: {_first_line(err)}"
        return False, f"{url}: no answer"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def hook_for(connection: Connection, plugins: object | None = None) -> BaseHook | None:
    """The hook that the connection's type names (``flow_connection_types``), or None."""
    from flow.plugins import PluginManager, current

    manager = plugins if isinstance(plugins, PluginManager) else current()
    spec = manager.connection_types().get(connection.conn_type)
    hook_class = spec.load_hook() if spec is not None else None
    if hook_class is None:
        return None
    hook: BaseHook = hook_class(connection.conn_id, connection=connection)
    return hook
