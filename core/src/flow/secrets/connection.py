"""``Connection``: how a task reaches an external system, and where flow finds one.

Lookup order for ``Connection.get(conn_id)``: the backends named in ``[core]
secrets_backends`` (default ``environment,database``: ``FLOW_CONN_<ID>``, then the metadata
database), then any other order the operator configures, including plugin backends.

URIs are Airflow-compatible: ``conn_type://login:password@host:port/schema?key=value``, every
part percent-encoded, and ``__extra__=<JSON>`` for an extra that is not flat strings.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from flow.exceptions import ConnectionNotFound
from flow.secrets.masking import MASK, is_sensitive_name, mask_secret

_accessor: ContextVar[dict[str, Any] | None] = ContextVar("flow_connection_accessor",
                                                          default=None)


@contextlib.contextmanager
def accessor_context(accessor: dict[str, Any]) -> Iterator[None]:
    """Who reads connections inside the block: a task (dag_id, run_id, task_id, map_index,
    try_number) or ``{"source": "cli"}``; passed to ``flow_connection_accessed``."""
    token = _accessor.set(dict(accessor))
    try:
        yield
    finally:
        _accessor.reset(token)


def current_accessor() -> dict[str, Any]:
    return dict(_accessor.get() or {"source": "unknown"})


class Connection:
    """A conn_id and what it takes to connect: host, port, schema, login, password, extra."""

    def __init__(self, conn_id: str, conn_type: str, host: str | None = None,
                 schema: str | None = None, login: str | None = None,
                 password: str | None = None, port: int | str | None = None,
                 extra: str | dict[str, Any] | None = None,
                 description: str | None = None) -> None:
        if not conn_id or not isinstance(conn_id, str):
            raise ValueError(f"a connection needs a non-empty conn_id, got {conn_id!r}")
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.host = host or None
        self.schema = schema or None
        self.login = login or None
        self.password = password or None
        self.port = int(port) if port not in (None, "") else None
        self.extra = _extra_text(extra, conn_id)
        self.description = description or None

    # ------------------------------------------------------------------------------- lookup

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """The connection ``conn_id`` from the configured backends, its secrets masked in logs.

        Raises :class:`ConnectionNotFound` naming the id and every backend searched.
        """
        from flow import plugins
        from flow.secrets.backends import configured_backends

        manager = plugins.current()
        backends = configured_backends(manager)
        for backend in backends:
            connection = backend.get_connection(conn_id)
            if connection is not None:
                connection.mask_secrets()
                manager.connection_accessed(conn_id, current_accessor())
                return connection
        searched = ", ".join(backend.describe() for backend in backends) or "no backends"
        raise ConnectionNotFound(
            f"connection {conn_id!r} not found; searched: {searched}. Add it with "
            f"`flow connections add {conn_id} --conn-uri ...` or set "
            f"FLOW_CONN_{conn_id.upper()}.")

    def mask_secrets(self) -> None:
        """Register the password and every sensitive extra with the process's masker."""
        if self.password:
            mask_secret(self.password)
        for key, value in self.extra_dejson.items():
            if is_sensitive_name(key):
                mask_secret(value)

    # ---------------------------------------------------------------------------- accessors

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """``extra`` as a dict (empty when unset)."""
        if not self.extra:
            return {}
        value = json.loads(self.extra)
        return value if isinstance(value, dict) else {}

    def to_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        """The fields as a dict; the password and sensitive extras as ``***`` unless ``reveal``."""
        extra = self.extra_dejson
        if not reveal:
            extra = {k: (MASK if is_sensitive_name(k) else v) for k, v in extra.items()}
        return {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "description": self.description,
            "host": self.host,
            "schema": self.schema,
            "login": self.login,
            "password": self.password if reveal or not self.password else MASK,
            "port": self.port,
            "extra": extra or None,
        }

    @classmethod
    def from_dict(cls, conn_id: str, data: dict[str, Any]) -> Connection:
        """A connection from the JSON form (``FLOW_CONN_X='{"conn_type": ...}'``, import files)."""
        known = {"conn_type", "host", "schema", "login", "password", "port", "extra",
                 "description", "conn_id", "uri"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"connection {conn_id!r}: unknown field(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(known))}")
        if data.get("uri"):
            return cls.from_uri(data["uri"], conn_id=conn_id, description=data.get("description"))
        if not data.get("conn_type"):
            raise ValueError(f"connection {conn_id!r} has no conn_type")
        return cls(conn_id=conn_id, conn_type=data["conn_type"], host=data.get("host"),
                   schema=data.get("schema"), login=data.get("login"),
                   password=data.get("password"), port=data.get("port"),
                   extra=data.get("extra"), description=data.get("description"))

    # ---------------------------------------------------------------------------------- URIs

    @classmethod
    def from_uri(cls, uri: str, *, conn_id: str, description: str | None = None) -> Connection:
        """Parse ``conn_type://login:password@host:port/schema?extra``."""
        scheme, sep, _ = uri.partition("://")
        if not sep or not scheme:
            raise ValueError(f"connection {conn_id!r}: {_safe_uri(uri)!r} is not a URI like "
                             "'postgres://user:password@host:5432/db'")
        parts = urlsplit(uri)
        conn_type = parts.scheme.replace("-", "_")
        if conn_type == "postgresql":
            conn_type = "postgres"
        try:
            port = parts.port
        except ValueError as err:
            raise ValueError(f"connection {conn_id!r}: bad port in URI: {err}") from None
        extra: dict[str, Any] | None = None
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if "__extra__" in query:
                try:
                    extra = json.loads(query.pop("__extra__"))
                except json.JSONDecodeError as err:
                    raise ValueError(f"connection {conn_id!r}: __extra__ in the URI is not "
                                     f"JSON: {err}") from None
                if query:
                    raise ValueError(f"connection {conn_id!r}: a URI with __extra__ may not "
                                     f"have other query parameters ({', '.join(query)})")
            else:
                extra = query
        host = parts.hostname
        return cls(
            conn_id=conn_id, conn_type=conn_type,
            host=unquote(host) if host else None,
            schema=unquote(parts.path[1:]) if parts.path.startswith("/") else None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=port, extra=extra, description=description,
        )

    def get_uri(self) -> str:
        """The connection as a URI that :meth:`from_uri` reads back unchanged."""
        uri = f"{self.conn_type.replace('_', '-')}://"
        if self.login or self.password:
            uri += quote(self.login or "", safe="")
            if self.password:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        if self.host:
            uri += quote(self.host, safe="")
        if self.port is not None:
            uri += f":{self.port}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        extra = self.extra_dejson
        if extra:
            if all(isinstance(v, str) for v in extra.values()) and "__extra__" not in extra:
                uri += "?" + urlencode(extra)
            else:
                uri += "?" + urlencode({"__extra__": json.dumps(extra)})
        return uri

    def __repr__(self) -> str:
        password = MASK if self.password else None
        return (f"Connection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, "
                f"host={self.host!r}, login={self.login!r}, password={password})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self.to_dict(reveal=True) == other.to_dict(reveal=True)

    __hash__ = None  # type: ignore[assignment]  # mutable


def _extra_text(extra: str | dict[str, Any] | None, conn_id: str) -> str | None:
    if extra is None or extra == "" or extra == {}:
        return None
    if isinstance(extra, dict):
        return json.dumps(extra)
    try:
        parsed = json.loads(extra)
    except json.JSONDecodeError as err:
        raise ValueError(f"connection {conn_id!r}: extra is not JSON: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"connection {conn_id!r}: extra must be a JSON object, got {extra!r}")
    return extra


def _safe_uri(uri: str) -> str:
    """``uri`` with any password cut out, for error messages."""
    scheme, sep, rest = uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
    return uri
