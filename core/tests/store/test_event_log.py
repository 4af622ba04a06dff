"""record_user_action: one event_log row and a flow_user_action call, secrets replaced."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flow.plugins import PluginManager
from flow.secrets.masking import mask_secret, reset_masker
from flow.store.event_log import record_user_action
from flow.store.models import EventLog
from flow.store.session import session_scope


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def flow_user_action(self, actor: str, action: str, target: str,
                         details: dict[str, Any]) -> None:
        self.calls.append((actor, action, target, details))


def test_action_is_logged_and_announced_without_secrets(db_url: str) -> None:
    reset_masker()
    mask_secret("canary-known-secret")
    listener = Listener()
    manager = PluginManager().load()
    manager.register(listener, "listener")
    details = {"password": "canary-password", "note": "uses canary-known-secret",
               "dag_id": "etl", "host": "db.example.com"}
    record_user_action("alice", "connection.create", "warehouse", details, source="cli",
                       plugins=manager)
    reset_masker()

    with session_scope() as session:
        row = session.scalars(select(EventLog)).one()
    assert (row.actor, row.action, row.target, row.source, row.dag_id) == (
        "alice", "connection.create", "warehouse", "cli", "etl")
    assert row.details["password"] == "***"
    assert row.details["note"] == "uses ***"
    assert row.details["host"] == "db.example.com"
    [(actor, action, target, sent)] = listener.calls
    assert (actor, action, target) == ("alice", "connection.create", "warehouse")
    assert sent["source"] == "cli" and sent["password"] == "***"
    assert "canary" not in repr(sent) and "canary" not in repr(row.details)


def test_action_joins_the_callers_transaction(db_url: str) -> None:
    manager = PluginManager().load()
    try:
        with session_scope() as session:
            record_user_action("bob", "dag.pause", "etl", {}, source="ui", session=session,
                               plugins=manager)
            raise RuntimeError("the action failed")
    except RuntimeError:
        pass
    with session_scope() as session:
        assert session.scalars(select(EventLog)).all() == []
