"""Every plugin package in the repository carries its conformance tests (the docs include them)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def plugin_packages() -> list[Path]:
    return [ROOT / "plugins" / "_template",
            *sorted(ROOT.glob("plugins/flow-*")), *sorted(ROOT.glob("examples/*-flow-plugin"))]


def test_every_plugin_package_has_a_conformance_test_module_using_the_suites() -> None:
    missing = []
    for package in plugin_packages():
        module = package / "tests" / "test_conformance.py"
        if not module.exists() or "PluginPackageConformance" not in module.read_text():
            missing.append(str(package.relative_to(ROOT)))
    assert not missing, f"no tests/test_conformance.py with PluginPackageConformance in: {missing}"


def test_the_conformance_page_includes_the_template_tests_verbatim() -> None:
    page = (ROOT / "docs" / "plugins" / "conformance.md").read_text()
    assert '--8<-- "plugins/_template/tests/test_conformance.py"' in page
