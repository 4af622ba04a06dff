"""flow-audit passes flow's plugin package checks (`flow plugins verify flow-audit` runs the
same)."""

from __future__ import annotations

from flow.testing import PluginPackageConformance


class TestPackage(PluginPackageConformance):
    distribution = "flow-audit"
    conformance_version = "0.1"
