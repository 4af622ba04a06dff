"""`flow plugins new` makes a package that installs into a fresh venv and passes its own tests,
conformance suites included; `flow plugins verify` on it prints a passing report."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flow.cli.main import cli

CORE = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv python, package folder): flow-acme-ops generated and installed into a new venv."""
    parent = tmp_path_factory.mktemp("generated")
    result = CliRunner().invoke(cli, ["plugins", "new", "acme-ops", "--dir", str(parent)])
    assert result.exit_code == 0, result.output
    package = parent / "flow-acme-ops"
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Third-party dependencies (SQLAlchemy, pytest, hatchling, ...) come from this
    # interpreter's site-packages, so the test needs no index and takes seconds; flow-core and
    # the plugin are installed into the venv itself.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_parent_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", "-e", str(CORE), "-e", str(package)],
                   check=True, capture_output=True, text=True)
    return python, package


def test_generated_plugin_has_the_template_files_under_its_own_names(
        installed_plugin: tuple[Path, Path]) -> None:
    _, package = installed_plugin
    pyproject = (package / "pyproject.toml").read_text()
    assert 'name = "flow-acme-ops"' in pyproject
    assert 'acme_ops = "flow_acme_ops.plugin"' in pyproject
    assert '"flow-core>=' in pyproject
    plugin = (package / "src" / "flow_acme_ops" / "plugin.py").read_text()
    assert "acme_ops_greeting" in plugin and "flow_task_instance_state_changed" in plugin
    assert "template" not in plugin
    assert (package / "tests" / "test_conformance.py").exists()
    assert "flow plugins new acme-ops" in (package / "README.md").read_text()


def test_generated_plugin_installs_and_its_tests_pass(installed_plugin: tuple[Path, Path]
                                                       ) -> None:
    python, package = installed_plugin
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:xdist", str(package / "tests")],
                            capture_output=True, text=True, cwd=package, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_verify_prints_a_passing_report_for_the_generated_plugin(
        installed_plugin: tuple[Path, Path]) -> None:
    python, package = installed_plugin
    result = subprocess.run([str(python), "-m", "flow.cli.main", "plugins", "verify",
                             "flow-acme-ops"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["distribution"] == "flow-acme-ops"
    assert report["tests_file"] == str(package / "tests" / "test_conformance.py")
    suites = {suite["suite"]: suite for suite in report["suites"]}
    assert set(suites) == {"package", "operator"}
    outcomes = [t["outcome"] for s in report["suites"] for t in s["tests"].values()]
    assert outcomes and set(outcomes) == {"passed"}
    assert suites["operator"]["claimed_capabilities"] == ["execution", "templating"]
