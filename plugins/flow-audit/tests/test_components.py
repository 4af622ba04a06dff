"""flow's component hooks: a scheduler, worker or web server that starts has the audit tables
ready before its first record, and one that stops has written everything it buffered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _walk(url: str) -> list[Any]:
    from flow.store.session import make_engine
    from flow_audit import store

    engine = make_engine(url)
    try:
        return list(store.walk(engine)) if store.tables_exist(engine) else []
    finally:
        engine.dispose()


def test_a_starting_component_creates_the_audit_tables_before_any_record(
        flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow.plugins import current
    from flow.store.migrate import upgrade
    from flow.store.session import get_engine, make_engine
    from flow_audit import store
    from flow_audit.chain import verify

    url = f"sqlite:///{flow_home / 'fresh.db'}"  # flow's tables only, as after `flow db migrate`
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    upgrade(get_engine(url))
    engine = make_engine(url)
    try:
        assert not store.tables_exist(engine)

        current().component_started("scheduler")

        assert store.tables_exist(engine)
        assert verify(store.walk(engine), store.head(engine), "").ok  # an empty chain
    finally:
        engine.dispose()


def test_a_stopping_component_writes_what_it_buffered(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow.execution.runtime import TaskInstanceSnapshot
    from flow.plugins import current
    from flow_audit import recorder

    # Nothing would be written for an hour, or before 10,000 records wait.
    monkeypatch.setenv("FLOW__AUDIT__RECORD_STATE_CHANGES", "true")
    monkeypatch.setenv("FLOW__AUDIT__FLUSH_INTERVAL", "3600")
    monkeypatch.setenv("FLOW__AUDIT__BATCH_SIZE", "10000")
    recorder.reset()
    plugins = current()
    plugins.component_started("local_worker")
    for task_id in ("extract", "load"):
        ti = TaskInstanceSnapshot("etl", "manual__1", task_id, -1, 1, "running")
        plugins.task_instance_state_changed(ti, "queued", "running")
    assert _walk(db_url) == []  # buffered

    plugins.component_stopped("local_worker")

    written = [(r.action, r.details["task_id"], r.details["current"]) for r in _walk(db_url)]
    assert written == [("task_instance.state_changed", "extract", "running"),
                       ("task_instance.state_changed", "load", "running")]
