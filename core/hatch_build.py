"""Bundles what lives beside ``core/`` in the repository into flow-core's sdist and wheel.

``flow plugins new`` copies ``plugins/_template``, and ``flow standalone`` the example DAGs
(``examples/*.py``; the ``examples/*-flow-plugin`` packages are not part of flow-core). A build
from the checkout takes them from there. The sdist carries a copy under ``bundled/``, so a wheel
built from the sdist (what ``python -m build`` and ``pip install flow-core-*.tar.gz`` do) takes
them from that copy. Editable installs find them in the checkout at run time and bundle nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundleHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        checkout = root.parent
        if (checkout / "plugins" / "_template").is_dir() and (checkout / "examples").is_dir():
            template, examples = checkout / "plugins" / "_template", checkout / "examples"
        else:  # an unpacked sdist
            template, examples = root / "bundled" / "plugin_template", root / "bundled" / "examples"
        dags = sorted(examples.glob("*.py"))
        if not template.is_dir() or not dags:
            raise RuntimeError(f"flow-core's build needs the plugin template and the example DAGs: "
                               f"neither {checkout} (a checkout) nor {root / 'bundled'} (an "
                               "sdist) has them")
        if self.target_name == "sdist":
            into_template, into_examples = "bundled/plugin_template", "bundled/examples"
        else:
            into_template, into_examples = "flow/_plugin_template", "flow/example_dags"
        build_data["force_include"][str(template)] = into_template
        for dag in dags:
            build_data["force_include"][str(dag)] = f"{into_examples}/{dag.name}"
