"""``flow plugins verify DIST``: the package checks and the plugin's own suites, as a report.

Runs pytest in a child process on a generated ``PluginPackageConformance`` subclass for DIST plus
the plugin's ``tests/test_conformance.py`` (found next to an editable install, or given), with
``--flow-conformance-report``; returns pytest's exit code and the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flow.exceptions import FlowException


class VerifyError(FlowException):
    """The distribution is not installed or its tests cannot be found."""


def project_folder(distribution: str) -> Path | None:
    """The source folder of an editable (or local-path) install, from ``direct_url.json``."""
    import importlib_metadata

    try:
        dist = importlib_metadata.distribution(distribution)
    except importlib_metadata.PackageNotFoundError:
        raise VerifyError(f"distribution {distribution!r} is not installed in "
                          f"{sys.prefix}; install it (pip install -e PATH) first") from None
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    url = json.loads(text).get("url", "")
    if not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path))


def verify(distribution: str, tests: Path | None = None, *, strict: bool = False,
           echo: bool = False) -> tuple[int, dict[str, Any]]:
    folder = project_folder(distribution)
    if tests is None and folder is not None and (folder / "tests" / "test_conformance.py").exists():
        tests = folder / "tests" / "test_conformance.py"
    with tempfile.TemporaryDirectory(prefix="flow-verify-") as scratch:
        package_test = Path(scratch) / "test_flow_package_checks.py"
        package_test.write_text(
            "from flow.testing import PluginPackageConformance\n\n\n"
            "class TestPackageChecks(PluginPackageConformance):\n"
            f"    distribution = {distribution!r}\n")
        report_path = Path(scratch) / "report.json"
        # A root above both files, so every test's node id names its file.
        root = os.path.commonpath([scratch, str(tests.parent)]) if tests else scratch
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                   "-q", f"--rootdir={root}", f"--flow-conformance-report={report_path}",
                   str(package_test)]
        if tests is not None:
            command.append(str(tests))
        if strict:
            command.append("--flow-conformance-strict")
        result = subprocess.run(command, capture_output=not echo, text=True, check=False,
                                cwd=str(tests.parent if tests else scratch))
        if not report_path.exists():
            output = (result.stdout or "") + (result.stderr or "")
            raise VerifyError(f"pytest wrote no report (exit {result.returncode}):\n"
                              f"{output[-3000:]}")
        report: dict[str, Any] = json.loads(report_path.read_text())
    report["distribution"] = distribution
    report["tests_file"] = str(tests) if tests else None
    return result.returncode, report
