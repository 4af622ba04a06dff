"""XCom backends: where the values tasks push are kept, chosen by ``[core] xcom_backend``.

Values travel as JSON (:mod:`flow.serialization`), never pickles. The size budget
``[core] max_xcom_size`` is enforced on the JSON text at push time, in the pushing task, so a
too-large value fails the task that made it with a message saying what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flow import serialization
from flow.exceptions import XComTooLarge
from flow.utils.timezone import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from flow.config import Config
    from flow.plugins import PluginManager

RETURN_VALUE = "return_value"


@dataclass(frozen=True)
class XComRecord:
    """One stored XCom, as :meth:`BaseXComBackend.get_many` returns it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str
    value: Any
    timestamp: datetime | None = None


class BaseXComBackend:
    """What an XCom backend implements. ``serialize``/``deserialize`` turn values into the
    stored text; a backend that keeps large values elsewhere (object storage) overrides them to
    store a reference, and ``set`` checks the size of what it actually stores."""

    name: str = ""

    def __init__(self, config: Config | None = None) -> None:
        from flow.config import load_config

        self.config = config or load_config()

    def serialize(self, value: Any) -> str:
        return serialization.dumps(value)

    def deserialize(self, text: str) -> Any:
        return serialization.loads(text)

    def check_size(self, text: str, *, dag_id: str, run_id: str, task_id: str, map_index: int,
                   key: str) -> None:
        limit = int(self.config.get("core", "max_xcom_size"))
        size = len(text.encode())
        if limit > 0 and size > limit:
            where = f"task {task_id!r}" + (f" (map_index {map_index})" if map_index >= 0 else "")
            raise XComTooLarge(
                f"XCom {key!r} of {where} in DAG {dag_id!r}, run {run_id!r} is {size:,} bytes "
                f"as JSON; the limit ([core] max_xcom_size) is {limit:,} bytes. Push a "
                "reference (a path, a URL, a table name) instead of the data, or raise the "
                "limit.")

    def set(self, *, ti_id: int, dag_id: str, run_id: str, task_id: str, map_index: int,
            key: str, value: Any, session: Session) -> None:
        raise NotImplementedError

    def get_one(self, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
                key: str = RETURN_VALUE, session: Session) -> Any:
        """The value, or None when nothing was pushed under ``key``."""
        raise NotImplementedError

    def get_many(self, *, dag_id: str, run_id: str, task_ids: Sequence[str],
                 key: str = RETURN_VALUE, map_indexes: Sequence[int] | None = None,
                 session: Session) -> list[XComRecord]:
        """Every matching XCom, ordered as ``task_ids``, then by map index."""
        raise NotImplementedError

    def clear(self, *, ti_id: int, session: Session) -> None:
        """Forget every XCom of one task instance (before a new try runs)."""
        raise NotImplementedError


class DatabaseXComBackend(BaseXComBackend):
    """XComs as JSON text in the ``xcom`` table, one row per (task instance, key)."""

    name = "database"

    def set(self, *, ti_id: int, dag_id: str, run_id: str, task_id: str, map_index: int,
            key: str, value: Any, session: Session) -> None:
        from sqlalchemy.exc import IntegrityError

        from flow.store.models import XComModel

        text = self.serialize(value)
        self.check_size(text, dag_id=dag_id, run_id=run_id, task_id=task_id,
                        map_index=map_index, key=key)
        # Update, else insert: portable on SQLite, PostgreSQL and MySQL alike. A concurrent
        # insert of the same key (a retried message) loses the race on the unique constraint
        # and becomes an update inside its savepoint.
        if self._update(session, ti_id, key, text):
            return
        try:
            with session.begin_nested():
                session.add(XComModel(task_instance_id=ti_id, dag_id=dag_id, run_id=run_id,
                                      task_id=task_id, map_index=map_index, key=key,
                                      value=text, timestamp=utcnow()))
        except IntegrityError:
            if not self._update(session, ti_id, key, text):
                raise

    @staticmethod
    def _update(session: Session, ti_id: int, key: str, text: str) -> bool:
        from sqlalchemy import update

        from flow.store.models import XComModel

        result = session.execute(
            update(XComModel)
            .where(XComModel.task_instance_id == ti_id, XComModel.key == key)
            .values(value=text, timestamp=utcnow()))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def get_one(self, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
                key: str = RETURN_VALUE, session: Session) -> Any:
        from sqlalchemy import select

        from flow.store.models import XComModel

        text = session.scalar(select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id,
            XComModel.task_id == task_id, XComModel.map_index == map_index,
            XComModel.key == key))
        return None if text is None else self.deserialize(text)

    def get_many(self, *, dag_id: str, run_id: str, task_ids: Sequence[str],
                 key: str = RETURN_VALUE, map_indexes: Sequence[int] | None = None,
                 session: Session) -> list[XComRecord]:
        rows = stored_xcoms(session.connection(), dag_id=dag_id, run_id=run_id,
                            task_ids=task_ids, key=key, map_indexes=map_indexes)
        return [XComRecord(dag_id, run_id, row.task_id, row.map_index, key,
                           self.deserialize(row.value), row.timestamp) for row in rows]

    def clear(self, *, ti_id: int, session: Session) -> None:
        from sqlalchemy import delete

        from flow.store.models import XComModel

        session.execute(delete(XComModel).where(XComModel.task_instance_id == ti_id))


@functools.cache
def _stored_statements() -> tuple[Any, Any]:
    """The reads of :func:`stored_xcoms` (all map indexes; some), built once per process, on
    first use: this module is imported where SQLAlchemy is not (a try's process needs only the
    serialization)."""
    from sqlalchemy import bindparam, select

    from flow.store.models import XComModel

    table = XComModel.__table__
    every = select(table.c.task_id, table.c.map_index, table.c.value, table.c.timestamp).where(
        table.c.dag_id == bindparam("dag_id"), table.c.run_id == bindparam("run_id"),
        table.c.task_id.in_(bindparam("task_ids", expanding=True)),
        table.c.key == bindparam("key"))
    return every, every.where(table.c.map_index.in_(bindparam("map_indexes", expanding=True)))


def stored_xcoms(connection: Any, *, dag_id: str, run_id: str, task_ids: Sequence[str],
                 key: str, map_indexes: Sequence[int] | None) -> list[Any]:
    """The database backend's rows (task_id, map_index, value as stored, timestamp) for
    ``task_ids`` under ``key``, in the order of ``task_ids`` then map index. The statement is
    built once: a supervisor runs it for each try that reads XComs."""
    if not task_ids:
        return []
    values: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "task_ids": list(task_ids),
                              "key": key}
    if map_indexes is not None:
        values["map_indexes"] = list(map_indexes)
    every, some = _stored_statements()
    rows = connection.execute(every if map_indexes is None else some, values).all()
    order = {task_id: position for position, task_id in enumerate(task_ids)}
    return sorted(rows, key=lambda row: (order[row.task_id], row.map_index))


def get_xcom_backend(plugins: PluginManager | None = None) -> BaseXComBackend:
    """An instance of the backend ``[core] xcom_backend`` names (default "database")."""
    if plugins is None:
        from flow.plugins import current

        plugins = current()
    name = str(plugins.config.get("core", "xcom_backend"))
    cls = plugins.xcom_backend(name).load()
    if not issubclass(cls, BaseXComBackend):
        raise TypeError(f"XCom backend {name!r} ({cls.__module__}.{cls.__qualname__}) does not "
                        "subclass flow.execution.xcom.BaseXComBackend")
    backend = cls(plugins.config)
    backend.name = name
    return backend
