"""The database XCom backend, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from flow.exceptions import XComTooLarge
from flow.execution.xcom import DatabaseXComBackend, get_xcom_backend
from flow.plugins import PluginManager, UnknownComponentError
from flow.store.models import DagRun, TaskInstance, XComModel
from flow.store.session import session_scope


def _task_instances(*task_ids: str, map_index: int = -1) -> dict[str, int]:
    """A DAG run of dag 'd' run 'r' with one task instance per id; returns their ids."""
    with session_scope() as session:
        session.add(DagRun(dag_id="d", run_id="r", run_type="manual", state="running"))
        session.flush()
        ids = {}
        for task_id in task_ids:
            ti = TaskInstance(dag_id="d", run_id="r", task_id=task_id, map_index=map_index)
            session.add(ti)
            session.flush()
            ids[task_id] = ti.id
        return ids


def _push(backend: DatabaseXComBackend, ti_id: int, task_id: str, value: object,
          key: str = "return_value", map_index: int = -1) -> None:
    with session_scope() as session:
        backend.set(ti_id=ti_id, dag_id="d", run_id="r", task_id=task_id, map_index=map_index,
                    key=key, value=value, session=session)


def test_extra_types_round_trip_through_the_database(db_url: str) -> None:
    ids = _task_instances("extract")
    value = {"when": datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC), "day": date(2026, 3, 4),
             "wait": timedelta(minutes=5), "amount": Decimal("10.01"),
             "id": uuid.UUID(int=7), "blob": b"\x00\x01", "pair": (1, 2), "tags": {"a"},
             "text": "ünïcödé " * 3}
    backend = DatabaseXComBackend()
    _push(backend, ids["extract"], "extract", value)
    with session_scope() as session:
        assert backend.get_one(dag_id="d", run_id="r", task_id="extract",
                               session=session) == value


def test_pushing_a_key_twice_keeps_one_row_with_the_last_value(db_url: str) -> None:
    ids = _task_instances("t")
    backend = DatabaseXComBackend()
    _push(backend, ids["t"], "t", 1)
    _push(backend, ids["t"], "t", 2)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(XComModel)) == 1
        assert backend.get_one(dag_id="d", run_id="r", task_id="t", session=session) == 2


def test_get_many_follows_task_order_then_map_index_and_clear_forgets(db_url: str) -> None:
    ids = _task_instances("b", "a")
    backend = DatabaseXComBackend()
    _push(backend, ids["a"], "a", "from a")
    _push(backend, ids["b"], "b", "from b")
    _push(backend, ids["b"], "b", "other key", key="other")
    with session_scope() as session:
        records = backend.get_many(dag_id="d", run_id="r", task_ids=["b", "a"], session=session)
        assert [(r.task_id, r.value) for r in records] == [("b", "from b"), ("a", "from a")]
        backend.clear(ti_id=ids["b"], session=session)
    with session_scope() as session:
        assert backend.get_one(dag_id="d", run_id="r", task_id="b", session=session) is None
        assert backend.get_one(dag_id="d", run_id="r", task_id="a", session=session) == "from a"


def test_a_value_over_the_budget_fails_at_push_naming_task_key_size_and_limit(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__CORE__MAX_XCOM_SIZE", "100")
    ids = _task_instances("big")
    backend = DatabaseXComBackend()
    with pytest.raises(XComTooLarge) as info:
        _push(backend, ids["big"], "big", "x" * 200, key="payload")
    message = str(info.value)
    for fragment in ("'payload'", "task 'big'", "202 bytes", "100 bytes", "max_xcom_size"):
        assert fragment in message
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(XComModel)) == 0


def test_backend_is_chosen_by_the_configured_name(flow_home: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(get_xcom_backend(PluginManager().load()), DatabaseXComBackend)
    monkeypatch.setenv("FLOW__CORE__XCOM_BACKEND", "s3")
    with pytest.raises(UnknownComponentError, match="no XCom backend named 's3'"):
        get_xcom_backend(PluginManager().load())
