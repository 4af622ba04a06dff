"""Run the ``flow`` CLI in-process (CliRunner) against the real metadata databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flow.cli.main import cli
from flow.plugins import PluginManager, activate
from flow.secrets.masking import reset_masker

FLOW_SCRIPT = "/work/venv/bin/flow"


@pytest.fixture
def flow_cli(flow_home: object) -> Iterator[Callable[..., Result]]:
    """``flow_cli("connections", "list")`` -> the click Result (stdout and stderr separate)."""
    reset_masker()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    with activate(PluginManager().load()):
        yield invoke
    reset_masker()


class ActionRecorder:
    def __init__(self) -> None:
        self.actions: list[tuple[str, str, str, dict[str, Any]]] = []

    def flow_user_action(self, actor: str, action: str, target: str,
                         details: dict[str, Any]) -> None:
        self.actions.append((actor, action, target, details))


@pytest.fixture
def actions(flow_cli: object) -> ActionRecorder:
    """Records the flow_user_action calls of the commands the test runs."""
    from flow.plugins import current

    recorder = ActionRecorder()
    current().register(recorder, "action-recorder")
    return recorder
