"""The pytest plugin: cheap to load, capabilities, versions, abstract fixtures and the report.

Each test runs pytest in a child process on a small suite subclass, as a plugin's CI would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_pytest(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                           "-p", "no:xdist", str(tmp_path / "test_suite.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          check=False)


NULL_TIMETABLE_SUITE = """
import pytest
from flow.testing import TimetableConformance

class TestNull(TimetableConformance):
    distribution = "flow-core"

    @pytest.fixture
    def timetable_factory(self):
        from flow.scheduling.timetables import NullTimetable
        return NullTimetable
"""


def test_loading_the_pytest_plugin_imports_no_heavy_module() -> None:
    code = ("import sys, flow.testing.pytest_plugin; "
            "print(','.join(m for m in ('sqlalchemy', 'flask', 'celery') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_a_test_needing_an_unclaimed_capability_is_skipped_naming_it(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, NULL_TIMETABLE_SUITE)
    assert result.returncode == 0, result.stdout
    assert "capability scheduled not claimed by TestNull (claims: none)" in result.stdout
    assert "unclaimed: scheduled" in result.stdout


def test_a_factory_fixture_left_abstract_fails_naming_it(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, """
from flow.testing import TimetableConformance

class TestForgotten(TimetableConformance):
    pass
""")
    assert result.returncode == 1
    assert ("TestForgotten must override the fixture 'timetable_factory' of "
            "TimetableConformance") in result.stdout


NEWER_TEST_SUITE = """
from flow.testing import ConformanceSuite, conformance

class FutureSuite(ConformanceSuite):
    flow_suite = "timetable"

    @conformance(since="0.1")
    def test_old(self):
        pass

    @conformance(since="9.0")
    def test_new(self):
        assert False, "the component predates this test"

class TestPinned(FutureSuite):
    conformance_version = "0.1"
"""


def test_a_test_newer_than_the_pinned_version_is_a_non_strict_expected_failure(
        tmp_path: Path) -> None:
    result = run_pytest(tmp_path, NEWER_TEST_SUITE)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 xfailed" in result.stdout
    assert "added in flow-core 9.0; TestPinned pins conformance version 0.1" in result.stdout


def test_strict_mode_runs_newer_tests_for_real(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, NEWER_TEST_SUITE, "--flow-conformance-strict")
    assert result.returncode == 1
    assert "1 failed, 1 passed" in result.stdout


def test_the_report_has_versions_claims_and_every_outcome(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = run_pytest(tmp_path, NULL_TIMETABLE_SUITE,
                        f"--flow-conformance-report={report_path}")
    assert result.returncode == 0, result.stdout
    report = json.loads(report_path.read_text())
    from importlib.metadata import version

    assert report["flow_core_version"] == version("flow-core")
    [suite] = report["suites"]
    assert suite["suite"] == "timetable"
    assert suite["distribution"] == "flow-core"
    assert suite["distribution_version"] == version("flow-core")
    assert suite["claimed_capabilities"] == []
    assert suite["unclaimed_capabilities"] == ["scheduled"]
    outcomes = {node.split("::")[-1]: test["outcome"] for node, test in suite["tests"].items()}
    assert outcomes["test_serialize_is_json_and_deserialize_restores_an_equal_timetable"] == \
        "passed"
    assert outcomes["test_runs_move_forward_without_overlapping"] == "skipped"


def test_claiming_an_unknown_capability_is_an_error_naming_the_known_ones() -> None:
    from flow.testing import ExecutorConformance

    with pytest.raises(TypeError, match="claims unknown executor capabilities teleport; "
                                        "known: adoption, cancel"):
        type("TestBad", (ExecutorConformance,), {"claims": {"teleport", "cancel"}})
