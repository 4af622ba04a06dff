"""The application's manager: set once per process, overridable for a block."""

from __future__ import annotations

import threading

import pytest

from flow import plugins
from flow.plugins import PluginManager


@pytest.fixture
def restore_process_manager():
    yield
    plugins.set_current(None)


def test_activate_overrides_the_process_manager_inside_the_block(make_config,
                                                                 restore_process_manager):
    process, override = PluginManager(make_config()), PluginManager(make_config())
    plugins.set_current(process)

    with plugins.activate(override):
        assert plugins.current() is override
    assert plugins.current() is process


def test_threads_share_the_process_manager(make_config, restore_process_manager):
    process = PluginManager(make_config())
    plugins.set_current(process)
    seen: list[PluginManager] = []

    thread = threading.Thread(target=lambda: seen.append(plugins.current()))
    thread.start()
    thread.join()

    assert seen == [process]


def test_current_builds_and_loads_a_manager_on_first_use(restore_process_manager, flow_home):
    plugins.set_current(None)

    manager = plugins.current()

    assert "sequential" in manager.executors()
    assert plugins.current() is manager
