"""Engines and sessions for the metadata database.

SQLite runs in WAL mode with a busy timeout so the scheduler, the web server and task processes
can share one file; PostgreSQL and MySQL/MariaDB use a small pool with pre-ping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}


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
        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}
    if parsed.get_backend_name() == "mysql":
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = {"charset": "utf8mb4"}
    return create_engine(url, echo=echo, **kwargs)


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


@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits at the end of the block and rolls back on an exception."""
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
