"""Registration hooks: records, name clashes, import strings resolved on first use."""

from __future__ import annotations

import logging
import sys
import uuid

import pytest

from flow.plugins import (
    ACTIVE,
    FAILED,
    PluginConflictError,
    PluginManager,
    UnknownComponentError,
)
from flow.records import ExecutorSpec, RecordError

CLASH = """
    from flow import hookimpl
    from flow.records import ExecutorSpec

    @hookimpl
    def flow_executors():
        return [ExecutorSpec("acme", "flow_clash_impl:AcmeExecutor"),
                ExecutorSpec("sequential", "flow_clash_impl:SequentialExecutor")]
"""


def test_executor_name_clash_names_both_distributions_and_the_builtin_keeps_it(
        fake_distribution, make_config, caplog):
    fake_distribution(CLASH, name="flow-clash", version="2.0.0")

    manager = PluginManager(make_config())
    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        executors = manager.executors()

    assert executors["sequential"].cls == \
        "flow.builtin.executors.sequential:SequentialExecutor"
    info = manager.plugin_info("clash")
    assert info is not None and info.status == FAILED
    assert "'sequential'" in info.reason
    assert "flow-core" in info.reason and "flow-clash 2.0.0" in info.reason
    assert "flow-core" in caplog.text and "flow-clash" in caplog.text


def test_plugin_with_a_clash_contributes_none_of_its_records(fake_distribution, make_config):
    fake_distribution(CLASH, name="flow-clash")

    executors = PluginManager(make_config()).executors()

    assert "acme" not in executors


def test_name_clash_is_fatal_in_strict_mode(fake_distribution, make_config):
    fake_distribution(CLASH, name="flow-clash")

    with pytest.raises(PluginConflictError, match=r"flow-core.*flow-clash"):
        PluginManager(make_config(FLOW_STRICT_PLUGINS="1")).load()


def test_clash_between_two_plugins_keeps_the_first_in_entry_point_order(
        fake_distribution, make_config):
    source = """
        from flow.records import ExecutorSpec

        def flow_executors():
            return [ExecutorSpec("acme", "{dist}_impl:Executor")]
    """
    fake_distribution(source.replace("{dist}", "alpha"), name="flow-alpha")
    fake_distribution(source.replace("{dist}", "beta"), name="flow-beta")

    manager = PluginManager(make_config())

    assert manager.executor("acme").cls == "alpha_impl:Executor"
    provider = manager.provider("flow_executors", "acme")
    assert provider is not None and provider.distribution == "flow-alpha"
    beta = manager.plugin_info("beta")
    assert beta is not None and "flow-alpha" in beta.reason


def test_record_of_the_wrong_type_fails_its_plugin(fake_distribution, make_config):
    fake_distribution("def flow_executors():\n    return ['acme']\n", name="flow-strings")

    manager = PluginManager(make_config())

    info = manager.plugin_info("strings")
    assert info is not None and info.status == FAILED
    assert "not a flow.records.ExecutorSpec" in info.reason
    assert "sequential" in manager.executors()


def test_registration_hook_that_raises_fails_only_its_plugin(fake_distribution, make_config):
    fake_distribution("def flow_operators():\n    raise RuntimeError('catalog offline')\n",
                      name="flow-raises")

    manager = PluginManager(make_config())

    info = manager.plugin_info("raises")
    assert info is not None and info.status == FAILED
    assert "flow_operators() raised RuntimeError: catalog offline" in info.reason
    assert "BashOperator" in manager.operators()


def test_record_with_a_malformed_import_string_fails_its_plugin(fake_distribution, make_config):
    fake_distribution("""
        from flow.records import ExecutorSpec

        def flow_executors():
            return [ExecutorSpec("acme", "AcmeExecutor")]
    """, name="flow-badstring")

    info = PluginManager(make_config()).plugin_info("badstring")

    assert info is not None and info.status == FAILED
    assert "'AcmeExecutor' is not an import string" in info.reason


def test_import_string_that_does_not_import_fails_on_use_naming_record_and_target(
        fake_distribution, make_config):
    fake_distribution("""
        from flow.records import ExecutorSpec

        def flow_executors():
            return [ExecutorSpec("acme", "acme_missing.executor:AcmeExecutor")]
    """, name="flow-lazy")
    manager = PluginManager(make_config())
    spec = manager.executor("acme")  # listing imports nothing

    with pytest.raises(RecordError, match=r"ExecutorSpec 'acme'.*acme_missing\.executor"):
        spec.load()


def test_import_string_is_imported_on_first_use_only(fake_distribution, make_config, tmp_path,
                                                     monkeypatch):
    marker = tmp_path / "imported"
    impl_dir = tmp_path / "impl"
    impl_dir.mkdir()
    impl_module = f"acme_impl_{uuid.uuid4().hex[:8]}"
    (impl_dir / f"{impl_module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n"
        "class AcmeExecutor:\n    name = 'acme'\n")
    monkeypatch.syspath_prepend(str(impl_dir))
    fake_distribution(f"""
        from flow.records import ExecutorSpec

        def flow_executors():
            return [ExecutorSpec("acme", "{impl_module}:AcmeExecutor")]
    """, name="flow-heavy")

    manager = PluginManager(make_config())
    spec = manager.executor("acme")
    assert not marker.exists()

    assert spec.load().__name__ == "AcmeExecutor"
    assert marker.exists()
    monkeypatch.delitem(sys.modules, impl_module)


def test_record_import_string_that_is_no_class_is_rejected():
    with pytest.raises(RecordError, match="not a class"):
        ExecutorSpec("acme", "flow.records:resolve_import_string").load()


def test_unknown_component_name_lists_what_is_installed(make_config):
    manager = PluginManager(make_config())

    with pytest.raises(UnknownComponentError, match=r"'celery'.*sequential.*flow plugins list"):
        manager.executor("celery")


def test_plugin_registered_at_runtime_joins_the_registries(make_config):
    class Plugin:
        @staticmethod
        def flow_executors():
            return [ExecutorSpec("inline", "inline_mod:Inline")]

    manager = PluginManager(make_config())
    info = manager.register(Plugin(), name="inline")

    assert info.status == ACTIVE
    assert "inline" in manager.executors()
    manager.unregister("inline")
    assert "inline" not in manager.executors()
