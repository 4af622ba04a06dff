"""Event and extension hooks: each listener called on its own, exceptions logged, never raised."""

from __future__ import annotations

import logging

import click

from flow.plugins import PluginManager

RAISING_LISTENER = """
    from flow import hookimpl

    @hookimpl(tryfirst=True)  # called before the recorders, so they run after it raised
    def flow_task_instance_state_changed(ti, previous, current):
        raise RuntimeError("listener is broken")
"""


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []

    def flow_task_instance_state_changed(self, ti, previous, current):
        self.calls.append((ti["task_id"], previous, current))


def test_raising_listener_is_logged_with_its_name_and_the_others_still_run(
        fake_distribution, make_config, caplog):
    fake_distribution(RAISING_LISTENER, name="flow-noisy", entry_point="noisy")
    manager = PluginManager(make_config())
    before, after = Recorder(), Recorder()
    manager.register(before, name="before")
    manager.register(after, name="after")

    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        manager.task_instance_state_changed({"task_id": "extract"}, "queued", "running")

    assert before.calls == after.calls == [("extract", "queued", "running")]
    assert "plugin=noisy" in caplog.text
    assert "distribution=flow-noisy" in caplog.text
    assert "listener is broken" in caplog.text  # the traceback is in the log


def test_listener_between_two_others_that_raises_stops_neither(make_config, caplog):
    class Broken:
        def flow_dag_run_state_changed(self, run, previous, current):
            raise ValueError("boom")

    manager = PluginManager(make_config())
    calls: list[str] = []

    class Counter:
        def flow_dag_run_state_changed(self, current):  # a listener may take fewer arguments
            calls.append(current)

    manager.register(Counter(), name="counter-1")
    manager.register(Broken(), name="broken")
    manager.register(Counter(), name="counter-2")

    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        manager.dag_run_state_changed(object(), "running", "success")

    assert calls == ["success", "success"]
    assert "plugin=broken" in caplog.text


def test_event_without_listeners_costs_nothing_and_reports_none(make_config):
    manager = PluginManager(make_config())

    assert not manager.has_listeners("flow_user_action")
    manager.user_action("alice", "trigger", "dag:etl", {"source": "cli"})


def test_listener_of_a_failed_plugin_is_not_called(fake_distribution, make_config, tmp_path):
    marker = tmp_path / "called"
    fake_distribution(f"""
        from pathlib import Path
        from flow.records import ExecutorSpec

        def flow_executors():
            return [ExecutorSpec("sequential", "x_impl:Clash")]

        def flow_connection_accessed(conn_id, accessor):
            Path({str(marker)!r}).write_text(conn_id)
    """, name="flow-clashing")
    manager = PluginManager(make_config())

    manager.connection_accessed("db", {"source": "cli"})

    assert not marker.exists()


def test_cli_extension_that_raises_leaves_the_other_commands(make_config, caplog):
    class Broken:
        def flow_cli(self, cli):
            raise RuntimeError("cannot add commands")

    class Good:
        def flow_cli(self, cli):
            cli.add_command(click.Command("hello", callback=lambda: None))

    manager = PluginManager(make_config())
    manager.register(Broken(), name="broken")
    manager.register(Good(), name="good")
    group = click.Group()

    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        manager.extend_cli(group)

    assert list(group.commands) == ["hello"]
    assert "plugin=broken" in caplog.text
