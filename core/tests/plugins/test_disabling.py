"""Disabling plugins by entry point or distribution name, allow-list mode, essential builtins."""

from __future__ import annotations

import logging

from flow.config import Config
from flow.plugins import ACTIVE, DISABLED, PluginManager

ACME = """
    from flow.records import ExecutorSpec

    def flow_executors():
        return [ExecutorSpec("{name}", "{name}_impl:Executor")]
"""


def _status(manager: PluginManager) -> dict[str, str]:
    return {info.name: info.status for info in manager.plugins()}


def test_plugin_disabled_by_entry_point_name_is_listed_and_provides_nothing(
        fake_distribution, make_config):
    fake_distribution(ACME.format(name="acme"), name="flow-acme", entry_point="acme")

    manager = PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="acme"))

    info = manager.plugin_info("acme")
    assert info is not None and info.status == DISABLED
    assert "disabled_plugins" in info.reason
    assert "acme" not in manager.executors()


def test_plugin_disabled_by_distribution_name(fake_distribution, make_config):
    fake_distribution(ACME.format(name="acme"), name="flow-acme", entry_point="acme")

    manager = PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="other, flow-acme"))

    assert _status(manager)["acme"] == DISABLED


def test_plugin_disabled_in_flow_toml(fake_distribution, tmp_path):
    fake_distribution(ACME.format(name="acme"), name="flow-acme", entry_point="acme")
    toml = tmp_path / "flow.toml"
    toml.write_text('[core]\ndisabled_plugins = "acme"\n')

    manager = PluginManager(Config(path=toml, environ={}))

    assert _status(manager)["acme"] == DISABLED


def test_default_builtin_can_be_disabled(make_config):
    manager = PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="flow.builtin.executors"))

    assert _status(manager)["flow.builtin.executors"] == DISABLED
    assert manager.executors() == {}


def test_plugin_may_take_a_name_of_a_disabled_builtin(fake_distribution, make_config):
    fake_distribution(ACME.format(name="sequential"), name="flow-seq")

    manager = PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="flow.builtin.executors"))

    assert manager.executor("sequential").cls == "sequential_impl:Executor"


def test_essential_builtin_cannot_be_disabled_and_says_so(make_config, caplog):
    with caplog.at_level(logging.WARNING, logger="flow.plugins"):
        manager = PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="flow.builtin.xcom"))
        status = _status(manager)

    assert status["flow.builtin.xcom"] == ACTIVE
    assert "database" in manager.xcom_backends()
    assert "flow.builtin.xcom is essential" in caplog.text


def test_disabling_flow_core_turns_off_only_the_default_builtins(make_config):
    status = _status(PluginManager(make_config(FLOW__CORE__DISABLED_PLUGINS="flow-core")))

    assert status["flow.builtin.executors"] == DISABLED
    assert status["flow.builtin.operators"] == DISABLED
    assert status["flow.builtin.timetables"] == ACTIVE
    assert status["flow.builtin.secrets"] == ACTIVE


def test_allow_list_loads_only_the_named_third_party_plugins(fake_distribution, make_config):
    fake_distribution(ACME.format(name="one"), name="flow-one", entry_point="one")
    fake_distribution(ACME.format(name="two"), name="flow-two", entry_point="two")
    fake_distribution(ACME.format(name="three"), name="flow-three", entry_point="three")

    manager = PluginManager(make_config(FLOW__CORE__ENABLED_PLUGINS="one,flow-three"))

    status = _status(manager)
    assert (status["one"], status["two"], status["three"]) == (ACTIVE, DISABLED, ACTIVE)
    two = manager.plugin_info("two")
    assert two is not None and "enabled_plugins" in two.reason
    assert all(status[module] == ACTIVE for module in
               ("flow.builtin.timetables", "flow.builtin.executors"))
