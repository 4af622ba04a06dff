"""The XCom backend suite: values round-trip as flow's JSON types, per task instance and key.

The author overrides ``xcom_backend_factory``: a callable ``() -> BaseXComBackend``. Tests store
XComs for real task instances in the metadata database (the backend may keep payloads elsewhere,
but ``ti_id`` always names a row) through a session the backend receives, as the task runner does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from flow.testing.environment import FlowEnvironment
from flow.testing.suites.base import ConformanceSuite, abstract_fixture, conformance


@dataclass(frozen=True)
class TaskInstances:
    """A DAG run with tasks ``a``, ``b`` and three map indexes of ``m``: ``ids[(task, index)]``."""

    dag_id: str
    run_id: str
    ids: dict[tuple[str, int], int]


class XComBackendConformance(ConformanceSuite):
    """Subclass and override ``xcom_backend_factory``."""

    flow_suite = "xcom"

    xcom_backend_factory = abstract_fixture(
        "xcom_backend_factory", "return a callable () -> a BaseXComBackend instance")

    @pytest.fixture
    def backend(self, xcom_backend_factory: Callable[[], Any], flow_plugins: Any) -> Any:
        return xcom_backend_factory()

    @pytest.fixture
    def session(self, flow_env: FlowEnvironment) -> Iterator[Any]:
        from flow.store.session import session_scope

        with session_scope(flow_env.engine) as session:
            yield session

    @pytest.fixture
    def tis(self, flow_env: FlowEnvironment) -> TaskInstances:
        from flow.states import DagRunState
        from flow.store.models import DagRun, TaskInstance
        from flow.store.session import session_scope

        dag_id, run_id = "xcom_suite", "manual__suite"
        with session_scope(flow_env.engine) as session:
            session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type="manual",
                               state=DagRunState.RUNNING, conf={}))
            session.flush()
            for task_id, index in [("a", -1), ("b", -1), ("m", 0), ("m", 1), ("m", 2)]:
                session.add(TaskInstance(dag_id=dag_id, run_id=run_id, task_id=task_id,
                                         map_index=index))
            session.flush()
            rows = session.scalars(select(TaskInstance)).all()
            ids = {(row.task_id, row.map_index): row.id for row in rows}
        return TaskInstances(dag_id, run_id, ids)

    def _set(self, backend: Any, session: Any, tis: TaskInstances, task_id: str, value: Any,
             key: str = "return_value", map_index: int = -1) -> None:
        backend.set(ti_id=tis.ids[(task_id, map_index)], dag_id=tis.dag_id, run_id=tis.run_id,
                    task_id=task_id, map_index=map_index, key=key, value=value, session=session)

    def _get(self, backend: Any, session: Any, tis: TaskInstances, task_id: str,
             key: str = "return_value", map_index: int = -1) -> Any:
        return backend.get_one(dag_id=tis.dag_id, run_id=tis.run_id, task_id=task_id,
                               map_index=map_index, key=key, session=session)

    @conformance(since="0.1")
    def test_values_of_every_json_type_round_trip(self, backend: Any, session: Any,
                                                  tis: TaskInstances) -> None:
        value = {"text": "héllo", "int": 7, "float": 1.5, "none": None, "list": [1, [2]],
                 "when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "delta": timedelta(hours=1),
                 "decimal": Decimal("1.10"), "bytes": b"\x00\xff", "tuple": (1, 2)}
        self._set(backend, session, tis, "a", value)
        assert self._get(backend, session, tis, "a") == value

    @conformance(since="0.1")
    def test_missing_xcom_is_none(self, backend: Any, session: Any, tis: TaskInstances) -> None:
        assert self._get(backend, session, tis, "a", key="never_pushed") is None

    @conformance(since="0.1")
    def test_setting_a_key_again_replaces_its_value(self, backend: Any, session: Any,
                                                    tis: TaskInstances) -> None:
        self._set(backend, session, tis, "a", 1, key="k")
        self._set(backend, session, tis, "a", 2, key="k")
        assert self._get(backend, session, tis, "a", key="k") == 2

    @conformance(since="0.1")
    def test_keys_and_tasks_are_kept_apart(self, backend: Any, session: Any,
                                           tis: TaskInstances) -> None:
        self._set(backend, session, tis, "a", "a-return")
        self._set(backend, session, tis, "a", "a-other", key="other")
        self._set(backend, session, tis, "b", "b-return")
        assert self._get(backend, session, tis, "a") == "a-return"
        assert self._get(backend, session, tis, "a", key="other") == "a-other"
        assert self._get(backend, session, tis, "b") == "b-return"

    @conformance(since="0.1")
    def test_get_many_orders_by_the_task_ids_given_then_map_index(
            self, backend: Any, session: Any, tis: TaskInstances) -> None:
        for index in (2, 0, 1):
            self._set(backend, session, tis, "m", f"m{index}", map_index=index)
        self._set(backend, session, tis, "a", "a")
        records = backend.get_many(dag_id=tis.dag_id, run_id=tis.run_id, task_ids=["m", "a"],
                                   session=session)
        assert [(r.task_id, r.map_index, r.value) for r in records] == [
            ("m", 0, "m0"), ("m", 1, "m1"), ("m", 2, "m2"), ("a", -1, "a")]
        some = backend.get_many(dag_id=tis.dag_id, run_id=tis.run_id, task_ids=["m"],
                                map_indexes=[1], session=session)
        assert [r.value for r in some] == ["m1"]

    @conformance(since="0.1")
    def test_clear_forgets_one_task_instance_only(self, backend: Any, session: Any,
                                                  tis: TaskInstances) -> None:
        self._set(backend, session, tis, "a", "a")
        self._set(backend, session, tis, "b", "b")
        backend.clear(ti_id=tis.ids[("a", -1)], session=session)
        assert self._get(backend, session, tis, "a") is None
        assert self._get(backend, session, tis, "b") == "b"

    @conformance(since="0.1")
    def test_a_value_that_is_not_json_is_refused_naming_its_type(
            self, backend: Any, session: Any, tis: TaskInstances) -> None:
        from flow.exceptions import FlowException

        with pytest.raises((FlowException, TypeError, ValueError), match="object"):
            self._set(backend, session, tis, "a", {"handle": object()})

    @conformance("large_payloads", since="0.1")
    def test_large_payloads_round_trip(self, backend: Any, session: Any,
                                       tis: TaskInstances,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        payload = "x" * (4 * 1024 * 1024)
        self._set(backend, session, tis, "a", payload)
        assert self._get(backend, session, tis, "a") == payload
