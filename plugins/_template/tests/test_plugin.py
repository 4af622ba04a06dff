"""The plugin registers cleanly and its operator runs."""

from __future__ import annotations

from pathlib import Path

from flow.config import Config
from flow.plugins import ACTIVE, PluginManager
from flow_template import plugin


def test_plugin_registers_its_operator_without_errors(tmp_path: Path) -> None:
    manager = PluginManager(Config(path=tmp_path / "flow.toml", environ={}), strict=True)

    info = manager.register(plugin, name="template")
    manager.check_pending()

    assert info.status == ACTIVE
    operator_class = manager.operators()["GreetOperator"].load()
    assert operator_class(task_id="greet", name="flow").execute({}) == "Hello, flow!"
