"""Each test starts with an empty masker and a plugin manager whose events it can watch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flow.plugins import PluginManager, activate
from flow.secrets.masking import reset_masker


@pytest.fixture(autouse=True)
def _fresh_masker() -> Iterator[None]:
    reset_masker()
    yield
    reset_masker()


class EventRecorder:
    """A plugin that records the event hooks it receives."""

    def __init__(self) -> None:
        self.accessed: list[tuple[str, dict[str, Any]]] = []
        self.actions: list[tuple[str, str, str, dict[str, Any]]] = []

    def flow_connection_accessed(self, conn_id: str, accessor: dict[str, Any]) -> None:
        self.accessed.append((conn_id, accessor))

    def flow_user_action(self, actor: str, action: str, target: str,
                         details: dict[str, Any]) -> None:
        self.actions.append((actor, action, target, details))


@pytest.fixture
def events(flow_home: object) -> Iterator[EventRecorder]:
    """A fresh active plugin manager with an :class:`EventRecorder` registered."""
    recorder = EventRecorder()
    manager = PluginManager().load()
    manager.register(recorder, "event-recorder")
    with activate(manager):
        yield recorder
