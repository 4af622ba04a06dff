"""A failure to write the audit trail is logged and counted and never breaks the action it
records; with ``[audit] fail_closed`` the web server refuses changes until it can write again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from flow_audit import recorder, store


def _break_the_audit_table() -> None:
    """What a revoked grant or a broken migration looks like from here: appends fail."""
    engine = store.writer_engine()
    store.ensure_tables(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_record"))
        connection.execute(text("CREATE TABLE audit_record (unrelated INTEGER)"))
    engine.dispose()


def test_a_failed_write_is_logged_and_counted_and_the_action_still_happens(
        app: Any, users: dict[str, str], caplog: pytest.LogCaptureFixture,
        records: Callable[..., list[Any]]) -> None:
    from flow.secrets.database import load_variable

    _break_the_audit_table()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}
    stats = recorder.recorder().stats

    caplog.set_level(logging.ERROR, logger="flow_audit")
    created = client.post("/api/v1/variables", json={"key": "region", "value": "eu"},
                          headers=headers)
    assert not recorder.recorder().flush(timeout=2)
    recorder.reset()  # the exit: what is left is tried once more, then counted as dropped

    assert created.status_code == 201
    assert load_variable("region") == "eu"
    assert stats.failed_writes >= 2 and stats.written == 0 and stats.dropped == 1
    assert "could not write 1 audit record(s)" in caplog.text
    assert "1 audit record(s) could not be written before exit" in caplog.text
    assert "eu" not in caplog.text.replace("flow_audit", "")  # no record content in the log


def test_fail_closed_refuses_changes_while_the_trail_cannot_be_written(
        app: Any, users: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__AUDIT__FAIL_CLOSED", "true")
    recorder.reset()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}

    before = client.post("/api/v1/variables", json={"key": "one", "value": "1"},
                         headers=headers)
    _break_the_audit_table()
    refused = client.post("/api/v1/variables", json={"key": "two", "value": "2"},
                          headers=headers)
    reading = client.get("/api/v1/variables", headers=headers)

    assert before.status_code == 201
    assert refused.status_code == 503
    assert "fail_closed" in refused.get_json()["detail"]
    assert reading.status_code == 200
    assert [v["key"] for v in reading.get_json()["variables"]] == ["one"]
