"""Reading tries' outcomes from Celery's result backend, many at once.

Two sources, one shape: ``fetch(ids)`` reads the current state of many Celery tasks in one
round trip; ``wait(timeout)`` returns what the backend pushed meanwhile. Redis pushes: Celery's
Redis backend publishes every stored state on the task's key, so a subscriber hears a try end
within a millisecond and ``fetch`` is only a safety net. The SQLAlchemy backend cannot push;
on PostgreSQL (psycopg) the workers ``NOTIFY`` after storing an outcome and the executor
``LISTEN`` s; elsewhere ``wait`` sleeps and the caller fetches every ``[celery]
result_poll_interval``.

Results are decoded as JSON only: the SQLAlchemy backend's own reader falls back to pickle for
rows it cannot decode, which is why it is not used here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskMeta:
    """A Celery task's state (``PENDING``, ``STARTED``, ``SUCCESS``, ``FAILURE``, ``REVOKED``)
    and its result (the try's outcome, or the exception's type and message)."""

    status: str
    result: Any = None


def result_source(app: Any) -> RedisResults | DatabaseResults:
    backend = app.backend
    if type(backend).__name__ in {"RedisBackend", "SentinelBackend"}:
        return RedisResults(backend)
    if type(backend).__name__ == "DatabaseBackend":
        return DatabaseResults(backend)
    raise ValueError(f"[celery] result_backend {type(backend).__name__} is not supported by "
                     "the flow executor: use Redis (redis://...) or a database (db+...)")


def _decode(backend: Any, payload: Any) -> TaskMeta | None:
    if payload is None:
        return None
    try:
        meta = backend.decode(payload)
    except Exception as err:  # not JSON: not written by a flow worker
        log.warning("a Celery result could not be decoded as JSON: %s", err)
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("status"), str):
        return None
    return TaskMeta(meta["status"], meta.get("result"))


class RedisResults:
    pushes = True

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        prefix = backend.task_keyprefix
        self.prefix = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
        self._pubsub: Any = None

    def fetch(self, task_ids: list[str]) -> dict[str, TaskMeta]:
        if not task_ids:
            return {}
        values = self.backend.client.mget([self.prefix + task_id for task_id in task_ids])
        found = {}
        for task_id, value in zip(task_ids, values, strict=True):
            meta = _decode(self.backend, value)
            if meta is not None:
                found[task_id] = meta
        return found

    def wait(self, timeout: float) -> list[tuple[str, TaskMeta]]:
        """Block up to ``timeout`` seconds for pushed states; return those that came."""
        try:
            if self._pubsub is None:
                pubsub = self.backend.client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self.prefix + "*")
                self._pubsub = pubsub
            found: list[tuple[str, TaskMeta]] = []
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                channel = message.get("channel")
                channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                meta = _decode(self.backend, message.get("data"))
                if meta is not None and channel.startswith(self.prefix):
                    found.append((channel[len(self.prefix):], meta))
                message = self._pubsub.get_message(timeout=0)
            return found
        except Exception as err:  # the connection broke: fetch() covers until it is back
            log.warning("listening for Celery results failed (%s); reconnecting", err)
            self.close()
            time.sleep(min(timeout, 1.0))
            return []

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # closing a broken connection
                log.debug("closing the result subscription failed", exc_info=True)
            self._pubsub = None


NOTIFY_CHANNEL = "flow_celery_results"


def _psycopg_version() -> tuple[int, ...]:
    try:
        import psycopg
    except ImportError:
        return (0,)
    return tuple(int(part) for part in psycopg.__version__.split(".")[:2] if part.isdigit())


def notify_result(backend: Any, task_id: str) -> None:
    """After a worker stored a try's outcome in a PostgreSQL result backend: tell the executors
    listening (``NOTIFY``), so they read it now rather than at their next poll."""
    if type(backend).__name__ != "DatabaseBackend" or not str(backend.url).startswith(
            "postgresql"):
        return
    from sqlalchemy import text

    session = backend.ResultSession()
    try:
        session.execute(text("SELECT pg_notify(:channel, :task_id)"),
                        {"channel": NOTIFY_CHANNEL, "task_id": task_id})
        session.commit()
    finally:
        session.close()


class DatabaseResults:
    """Results in the database: read in one query for many tries; on PostgreSQL with psycopg
    the workers' ``NOTIFY`` wakes the reader, and polling is the safety net."""

    def __init__(self, backend: Any) -> None:
        from sqlalchemy import create_engine

        self.backend = backend
        self.table = backend.task_cls.__table__
        # An engine of its own with a pool: outside a forked worker, Celery's session manager
        # makes a new engine, and so a new connection, for every session it hands out.
        self.engine = create_engine(backend.url, pool_size=2, max_overflow=2,
                                    pool_pre_ping=True)
        # The result tables may not exist before the first worker stored a result.
        backend.session_manager.prepare_models(self.engine)
        self._listener: Any = None
        # psycopg 3.2 added notifies(timeout=, stop_after=).
        self.pushes = self.engine.dialect.name == "postgresql" and \
            self.engine.dialect.driver == "psycopg" and _psycopg_version() >= (3, 2)

    def fetch(self, task_ids: list[str]) -> dict[str, TaskMeta]:
        if not task_ids:
            return {}
        from sqlalchemy import select

        columns = self.table.c
        found = {}
        with self.engine.connect() as connection:
            rows = connection.execute(select(columns.task_id, columns.status, columns.result)
                                      .where(columns.task_id.in_(task_ids))).all()
        for task_id, status, result in rows:
            decoded = None
            if result is not None:
                try:
                    decoded = self.backend.decode(bytes(result))
                except Exception as err:  # not JSON: not written by a flow worker
                    log.warning("the Celery result of %s is not JSON: %s", task_id, err)
            found[str(task_id)] = TaskMeta(str(status), decoded)
        return found

    def wait(self, timeout: float) -> list[tuple[str, TaskMeta]]:
        """Without notifications: sleep. With them: wait for the next, and return the
        results of the tries named."""
        if not self.pushes:
            time.sleep(timeout)
            return []
        try:
            if self._listener is None:
                import psycopg

                url = self.engine.url.set(drivername="postgresql")
                listener = psycopg.connect(url.render_as_string(hide_password=False),
                                           autocommit=True)
                listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self._listener = listener
            named = [str(note.payload) for note in self._listener.notifies(
                timeout=timeout, stop_after=1)]
            named += [str(note.payload) for note in self._listener.notifies(timeout=0)]
        except Exception as err:  # the connection broke: polling covers until it is back
            log.warning("listening for Celery results failed (%s); reconnecting", err)
            self.close_listener()
            time.sleep(min(timeout, 1.0))
            return []
        return list(self.fetch(named).items()) if named else []

    def close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # closing a broken connection
                log.debug("closing the result listener failed", exc_info=True)
            self._listener = None

    def close(self) -> None:
        self.close_listener()
        self.engine.dispose()
