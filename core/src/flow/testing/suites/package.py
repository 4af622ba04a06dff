"""The plugin package suite: what ``flow plugins verify DIST`` checks of a distribution.

The author sets ``distribution = "flow-mine"`` (or overrides the ``plugin_distribution``
fixture). The checks read the installed distribution's metadata, load its entry points in a
fresh strict plugin manager, and import each plugin module in a separate interpreter to see what
it drags in.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import pytest

from flow.testing.suites.base import ConformanceSuite, conformance

# Modules a plugin module must not import: loading plugins happens in every `flow` command.
HEAVY_MODULES = ("sqlalchemy", "flask", "celery", "kubernetes", "pandas", "numpy", "boto3",
                 "requests", "httpx", "psycopg", "pymysql", "alembic")


class PluginPackageConformance(ConformanceSuite):
    """Set ``distribution`` to the plugin's distribution name."""

    flow_suite = "package"

    @pytest.fixture
    def plugin_distribution(self) -> str:
        if not self.distribution:
            pytest.fail(f"{type(self).__name__} must set `distribution` (the plugin's "
                        "distribution name) or override the fixture 'plugin_distribution' of "
                        "PluginPackageConformance", pytrace=False)
        return self.distribution

    @pytest.fixture
    def entry_points(self, plugin_distribution: str) -> list[Any]:
        import importlib_metadata

        try:
            dist = importlib_metadata.distribution(plugin_distribution)
        except importlib_metadata.PackageNotFoundError:
            pytest.fail(f"distribution {plugin_distribution!r} is not installed "
                        "(pip install -e it first)", pytrace=False)
        return [ep for ep in dist.entry_points if ep.group == "flow.plugins"]

    @pytest.fixture
    def manager(self, flow_plugins: Any) -> Any:
        return flow_plugins

    @conformance(since="0.1")
    def test_entry_points_resolve(self, entry_points: list[Any], plugin_distribution: str
                                  ) -> None:
        assert entry_points, (f"{plugin_distribution} declares no entry point in the "
                              "'flow.plugins' group of its pyproject.toml")
        for entry_point in entry_points:
            assert entry_point.load() is not None

    @conformance(since="0.1")
    def test_it_loads_in_a_strict_manager_without_errors(self, entry_points: list[Any],
                                                         manager: Any) -> None:
        from flow.plugins import ACTIVE

        for entry_point in entry_points:
            info = manager.plugin_info(entry_point.name)
            assert info is not None, f"plugin {entry_point.name} was not loaded"
            assert info.status == ACTIVE, f"plugin {entry_point.name}: {info.reason}"
        manager.check_pending()

    @conformance(since="0.1")
    def test_its_records_resolve_to_classes(self, entry_points: list[Any], manager: Any
                                            ) -> None:
        from flow.plugins import REGISTRIES

        names = {ep.name for ep in entry_points}
        for hook in REGISTRIES:
            for record_name, record in getattr(manager, hook.removeprefix("flow_"))().items():
                owner = manager.provider(hook, record_name)
                if owner is None or owner.name not in names:
                    continue
                if hasattr(record, "load_hook"):
                    record.load_hook()
                else:
                    assert isinstance(record.load(), type)

    @conformance(since="0.1")
    def test_its_hooks_are_documented_specs_with_matching_arguments(
            self, entry_points: list[Any]) -> None:
        from flow import hookspecs

        for entry_point in entry_points:
            module = entry_point.load()
            for name, function in inspect.getmembers(module, callable):
                if not name.startswith("flow_") or isinstance(function, type):
                    continue
                spec = getattr(hookspecs, name, None)
                assert spec is not None, f"{entry_point.value}.{name} is not a flow hook"
                assert inspect.getdoc(spec), f"hook {name} has no documentation"
                wanted = set(inspect.signature(function).parameters)
                offered = set(inspect.signature(spec).parameters)
                assert wanted <= offered, (f"{entry_point.value}.{name} takes "
                                           f"{sorted(wanted - offered)}, not arguments of "
                                           f"the hook ({sorted(offered)})")

    @conformance(since="0.1")
    def test_declared_flow_core_range_is_satisfied(self, plugin_distribution: str) -> None:
        import importlib_metadata
        from packaging.requirements import Requirement

        requirements = [Requirement(text) for text in
                        importlib_metadata.requires(plugin_distribution) or []]
        core = [req for req in requirements if req.name == "flow-core" and not req.marker]
        assert core, f"{plugin_distribution} does not depend on flow-core"
        assert str(core[0].specifier), (f"{plugin_distribution} depends on flow-core without "
                                        "a version range (e.g. flow-core>=0.1,<0.3)")
        installed = importlib_metadata.version("flow-core")
        assert core[0].specifier.contains(installed, prereleases=True), (
            f"{plugin_distribution} requires {core[0]}; flow-core {installed} is installed")

    @conformance(since="0.1")
    def test_plugin_module_imports_nothing_heavy(self, entry_points: list[Any]) -> None:
        for entry_point in entry_points:
            module = entry_point.value.partition(":")[0]
            code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
                    f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))")
            result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
            heavy = json.loads(result.stdout.strip().splitlines()[-1])
            assert not heavy, (f"importing {module} imports {', '.join(heavy)}: name classes "
                               "by import string in the records so they load on first use")
