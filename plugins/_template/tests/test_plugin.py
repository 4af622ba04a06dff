"""The plugin registers cleanly, its hook reads its own connection type, its operator runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flow.config import Config
from flow.plugins import ACTIVE, PluginManager
from flow_template import plugin

# The JSON form of FLOW_CONN_<ID>: a conn_type with an underscore is not a valid URI scheme.
CONN_JSON = ('{"conn_type": "template_greeting", "host": "greetings.example.com", '
             '"password": "k3y-for-tests", "extra": {"salutation": "Howdy"}}')


def test_the_installed_plugin_loads_its_operator_and_connection_type(
        tmp_path: Path) -> None:
    manager = PluginManager(Config(path=tmp_path / "flow.toml", environ={}), strict=True).load()
    manager.check_pending()

    info = next((i for i in manager.plugins() if i.module == plugin.__name__), None)
    assert info is not None, "the entry point is not installed: pip install -e this folder"
    assert info.status == ACTIVE, info.reason
    assert "flow_task_instance_state_changed" in info.hooks
    assert manager.operators()["GreetOperator"].load().__name__ == "GreetOperator"
    assert manager.connection_types()[plugin.CONN_TYPE].load_hook().__name__ == "GreetingHook"


def test_the_hook_greets_with_the_connections_salutation(
        flow_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_template.hooks import GreetingHook

    monkeypatch.setenv("FLOW_CONN_GREETINGS", CONN_JSON)
    hook = GreetingHook("greetings")
    assert hook.greet("flow") == "Howdy, flow!"
    assert hook.test_connection() == (True, "greetings from greetings.example.com")


def test_the_operator_runs_in_a_dag_and_pushes_its_greeting(
        dag_files: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_TEMPLATE_DEFAULT", CONN_JSON)
    dag = dag_files.dag("""
        from datetime import datetime
        from flow import DAG
        from flow_template.operators import GreetOperator

        with DAG("greet", schedule=None, start_date=datetime(2024, 1, 1)):
            GreetOperator(task_id="greet", name="{{ dag.dag_id }}")
        """)
    assert run_dag(dag).states == {"greet": "success"}
