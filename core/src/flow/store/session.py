"""Engines and sessions for the metadata database.

SQLite runs in WAL mode with a busy timeout so the scheduler, the web server and task processes
can share one file; PostgreSQL and MySQL/MariaDB use a small pool whose connections are pinged
at checkout when they sat idle in it (see :func:`_fork_safe`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}

# A pooled connection checked in less than this many seconds ago is handed out without a ping
# (HikariCP's "alive bypass window" is the same idea, at 500 ms): on a busy scheduler or worker
# a ping per checkout was a round trip in every commit of a task's hop. A server that dropped a
# connection within the window fails that one use, as a drop in the middle of a use would.
PING_AFTER_IDLE = 0.5


def normalize_url(url: str) -> str:
    """Pick the driver flow installs for each database when the URL names none."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif driver in {"mysql", "mariadb"}:
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return _fork_safe(engine, ping=False)
    # Pre-ping is done by the checkout handler below, after it checked the connection is this
    # process's own (SQLAlchemy's pool_pre_ping would ping a parent's connection first).
    kwargs: dict[str, Any] = {"pool_size": 5, "max_overflow": 10}
    if parsed.get_backend_name() == "mysql":
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = {"charset": "utf8mb4"}
    return _fork_safe(create_engine(url, echo=echo, **kwargs), ping=True)


def _fork_safe(engine: Engine, *, ping: bool) -> Engine:
    """A forked child never uses a pooled connection of its parent: checking one out there
    drops it (without closing the parent's socket) and connects anew. Costs nothing in a child
    that never touches the database, unlike disposing the pool after every fork. With ``ping``,
    a connection of this process that sat in the pool for ``PING_AFTER_IDLE`` seconds or more
    is pinged at checkout and replaced when the server dropped it (a database restart)."""

    def on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()
        record.info["idle_since"] = time.monotonic()

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        owner = record.info.get("pid")
        if owner is not None and owner != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError(f"connection of process {owner}, checked out in "
                                         f"process {os.getpid()}: connecting anew")
        if ping and time.monotonic() - record.info.get("idle_since", 0.0) >= PING_AFTER_IDLE:
            try:
                alive = engine.dialect.do_ping(dbapi_connection)
            except Exception as err:  # the server or the network dropped it
                raise exc.DisconnectionError(f"the connection was lost: {err}") from err
            if not alive:
                raise exc.DisconnectionError("the connection was lost")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "checkin", on_checkin)
    event.listen(engine, "checkout", on_checkout)
    engine.info_fork_safe = True  # type: ignore[attr-defined]
    return engine


def is_fork_safe(engine: Engine) -> bool:
    """Whether ``engine`` was made by :func:`make_engine` (see :func:`_fork_safe`)."""
    return bool(getattr(engine, "info_fork_safe", False))


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``[database] url``), one per URL per process."""
    if url is None:
        from flow.config import load_config

        config = load_config()
        url = config.get("database", "url")
        echo = bool(config.get("database", "echo"))
    else:
        echo = False
    assert url is not None
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url, echo=echo)
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (after fork, and between tests)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


# One Session class for every engine: each sessionmaker makes a new Session subclass, whose
# event dispatch SQLAlchemy builds again for the first session of that class (about 0.15 ms).
_Session = sessionmaker(expire_on_commit=False)


def new_session(engine: Engine) -> Session:
    """A session on ``engine`` that keeps its objects' values after commit."""
    return _Session(bind=engine)


@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits at the end of the block and rolls back on an exception."""
    session = new_session(engine or get_engine())
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
