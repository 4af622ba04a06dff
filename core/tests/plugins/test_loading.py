"""Loading plugins from entry points: order, import failures, misspelled hooks, strict mode."""

from __future__ import annotations

import logging

import pytest

from flow.plugins import ACTIVE, BUILTIN_PLUGINS, FAILED, PluginError, PluginManager

BROKEN = """
    import acme_sdk_that_is_not_installed  # noqa: F401
"""

MISSPELLED = """
    from flow import hookimpl

    @hookimpl
    def flow_exectors():
        return []
"""


def test_builtins_are_registered_first_in_their_fixed_order(fake_distribution, make_config):
    fake_distribution("def flow_operators():\n    return []\n", name="flow-aaa",
                      entry_point="aaa")  # sorts before every builtin name

    names = [info.name for info in PluginManager(make_config()).plugins()]

    assert names[: len(BUILTIN_PLUGINS)] == [module for module, _ in BUILTIN_PLUGINS]
    assert names[len(BUILTIN_PLUGINS):] == ["aaa"]


def test_plugin_that_fails_to_import_is_failed_and_everything_else_works(
        fake_distribution, make_config, caplog):
    fake_distribution(BROKEN, name="flow-broken", version="0.3.0")

    manager = PluginManager(make_config())
    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        infos = {info.name: info for info in manager.plugins()}

    broken = infos["broken"]
    assert broken.status == FAILED
    assert (broken.distribution, broken.version) == ("flow-broken", "0.3.0")
    assert "ModuleNotFoundError" in broken.reason
    assert "acme_sdk_that_is_not_installed" in broken.reason
    assert "flow-broken" in caplog.text
    assert "sequential" in manager.executors()
    assert all(info.status == ACTIVE for name, info in infos.items() if name != "broken")


def test_strict_mode_makes_an_import_failure_fatal_naming_the_distribution(
        fake_distribution, make_config):
    fake_distribution(BROKEN, name="flow-broken")

    with pytest.raises(PluginError, match="flow-broken") as raised:
        PluginManager(make_config(FLOW_STRICT_PLUGINS="1")).load()
    assert "FLOW_STRICT_PLUGINS" in str(raised.value)


def test_strict_mode_can_be_set_in_the_config_too(fake_distribution, make_config):
    fake_distribution(BROKEN, name="flow-broken")

    with pytest.raises(PluginError, match="flow-broken"):
        PluginManager(make_config(FLOW__CORE__STRICT_PLUGINS="true")).load()


def test_misspelled_hook_fails_loudly_naming_plugin_distribution_and_the_right_name(
        fake_distribution, make_config, caplog):
    fake_distribution(MISSPELLED, name="flow-typo")

    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        info = PluginManager(make_config()).plugin_info("typo")

    assert info is not None and info.status == FAILED
    assert "unknown hook flow_exectors (did you mean flow_executors?)" in info.reason
    logged = caplog.text
    assert "plugin typo" in logged and "flow-typo" in logged and "flow_executors?" in logged


def test_check_pending_raises_for_a_misspelled_hook_and_passes_without_one(
        fake_distribution, make_config):
    clean = PluginManager(make_config()).load()
    clean.check_pending()

    fake_distribution(MISSPELLED, name="flow-typo")
    manager = PluginManager(make_config()).load()
    with pytest.raises(PluginError, match=r"flow-typo.*flow_exectors.*flow_executors"):
        manager.check_pending()


def test_misspelled_hook_is_fatal_in_strict_mode(fake_distribution, make_config):
    fake_distribution(MISSPELLED, name="flow-typo")

    with pytest.raises(PluginError, match="did you mean flow_executors"):
        PluginManager(make_config(FLOW_STRICT_PLUGINS="1")).load()


def test_hook_with_wrong_argument_names_fails_its_plugin(fake_distribution, make_config):
    fake_distribution("def flow_cli(group):\n    pass\n", name="flow-args")

    info = PluginManager(make_config()).plugin_info("args")

    assert info is not None and info.status == FAILED
    assert "group" in info.reason


def test_entry_points_are_read_once_per_manager(fake_distribution, make_config):
    manager = PluginManager(make_config()).load()
    fake_distribution("def flow_operators():\n    return []\n", name="flow-late")

    assert "late" not in {info.name for info in manager.load().plugins()}
    # A new manager reads the entry points again and sees the distribution that appeared
    # on sys.path since: importlib-metadata keeps no stale cache across sys.path changes.
    assert "late" in {info.name for info in PluginManager(make_config()).plugins()}


def test_second_entry_point_with_a_taken_name_fails_and_the_first_stays(
        fake_distribution, make_config):
    fake_distribution("def flow_operators():\n    return []\n", name="flow-first",
                      entry_point="shared")
    fake_distribution("def flow_operators():\n    return []\n", name="flow-second",
                      entry_point="shared")

    infos = PluginManager(make_config()).plugins()

    by_dist = {info.distribution: info for info in infos if info.name.startswith("shared")}
    assert by_dist["flow-first"].status == ACTIVE
    assert by_dist["flow-second"].status == FAILED
    assert "flow-first" in by_dist["flow-second"].reason


def test_plugin_lists_the_hooks_it_implements(fake_distribution, make_config):
    fake_distribution("""
        def flow_operators():
            return []

        def flow_task_instance_state_changed(ti, previous, current):
            pass
    """, name="flow-hooks")

    info = PluginManager(make_config()).plugin_info("hooks")

    assert info is not None
    assert info.hooks == ["flow_operators", "flow_task_instance_state_changed"]
