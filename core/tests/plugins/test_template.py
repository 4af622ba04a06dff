"""plugins/_template stays a working plugin: a new plugin copied from it loads cleanly."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

from flow.plugins import ACTIVE, PluginManager

TEMPLATE = Path(__file__).resolve().parents[3] / "plugins" / "_template"


def test_template_entry_point_names_a_plugin_that_loads_strictly(make_config, monkeypatch):
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["project"]
    (entry_point, module), = project["entry-points"]["flow.plugins"].items()
    monkeypatch.syspath_prepend(str(TEMPLATE / "src"))
    for name in [m for m in sys.modules if m.startswith("flow_template")]:
        monkeypatch.delitem(sys.modules, name)

    manager = PluginManager(make_config(), strict=True)
    info = manager.register(importlib.import_module(module), name=entry_point)
    manager.check_pending()

    assert info.status == ACTIVE
    assert any(dep.startswith("flow-core>=") for dep in project["dependencies"])
    template_specs = [spec for spec in manager.operators().values()
                      if spec.import_path.startswith("flow_template.")]
    assert template_specs
    assert all(spec.load().__module__ == "flow_template.operators" for spec in template_specs)

