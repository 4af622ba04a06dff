"""flow's sessions. One noxfile for the workspace: it discovers ``core`` and ``plugins/flow-*``.

    nox -s tests            every package's tests (real databases; see README)
    nox -s "tests(core)"    one package; arguments after -- go to pytest
    nox -s lint typecheck
    nox -s demo           run the example DAGs on the embedded default (SQLite)
    nox -s bench          print the benchmark figures
    nox -s docs           build the documentation site (mkdocs --strict) into build/site
    nox -s conformance    flow's builtins through their conformance suites, strict, with a report
    nox -s new_plugin -- NAME [--dir DIR]   a new plugin package from plugins/_template
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = os.environ.get("FLOW_NOX_PYTHON", "3.11")
TEST_DEPS = ["pytest>=8", "pytest-xdist>=3.5", "pytest-timeout>=2.3"]
PLUGIN_BUILD_DEPS = ["hatchling>=1.21", "editables>=0.5"]
# mypy --strict for these (root pyproject.toml): the contracts plugins code against
TYPED_STRICT = ["core/src/flow/hookspecs.py", "core/src/flow/records.py",
                "core/src/flow/plugins.py", "core/src/flow/testing"]


def _packages() -> dict[str, Path]:
    """core, every plugins/flow-* distribution (plugins/_template is a skeleton, not one; a
    test generates a plugin from it and runs its tests) and the examples/*-flow-plugin ones."""
    found = {"core": ROOT / "core"}
    for path in sorted((ROOT / "plugins").glob("flow-*")):
        if (path / "pyproject.toml").exists():
            found[path.name.removeprefix("flow-")] = path
    for path in sorted((ROOT / "examples").glob("*-flow-plugin")):
        if (path / "pyproject.toml").exists():
            found[path.name.removesuffix("-flow-plugin")] = path
    return found


PACKAGES = _packages()


def _install_core(session: nox.Session) -> None:
    session.install("-e", f"{ROOT / 'core'}[postgres,mysql]")


@nox.session(python=PYTHON)
@nox.parametrize("package", list(PACKAGES), ids=list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests against real services (SQLite, PostgreSQL, MariaDB, ...)."""
    if package == "core":
        # core's [test] extra lists what its own suite needs; hatchling and editables let the
        # test of `flow plugins new` install a generated plugin without build isolation.
        session.install("-e", f"{ROOT / 'core'}[postgres,mysql,test]", *TEST_DEPS,
                        *PLUGIN_BUILD_DEPS)
    else:
        _install_core(session)
        session.install(*TEST_DEPS)
    path = PACKAGES[package]
    paths = [str(path / "tests")]
    if package == "core" and (ROOT / "tests").is_dir():
        paths.append(str(ROOT / "tests"))  # the cross-package integration tests
    if package != "core":
        session.install("-e", f"{path}[test]" if _has_test_extra(path) else str(path))
    workers = os.environ.get("FLOW_TEST_WORKERS", "2")
    # pytest exits 5 when it collected no test; nox fails the session on it like on any other
    # non-zero code, so a package whose tests vanished cannot pass silently.
    session.run("pytest", "-n", workers, "--timeout=300", "-p", "no:cacheprovider", *paths,
                *session.posargs, env={"FLOW_HOME": session.create_tmp()})


def _has_test_extra(path: Path) -> bool:
    import tomllib

    data = tomllib.loads((path / "pyproject.toml").read_text())
    return "test" in data.get("project", {}).get("optional-dependencies", {})


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Minutes-long crash and HA runs (two schedulers, random kill -9); not part of `tests`."""
    session.install("-e", f"{ROOT / 'core'}[postgres,mysql,test]")
    session.run("pytest", "-m", "soak", "-p", "no:cacheprovider", str(ROOT / "core" / "tests"),
                *session.posargs, env={"FLOW_SOAK": "1", "FLOW_HOME": session.create_tmp()})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the whole workspace."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy, strict on the contracts: hookspecs, records, plugins, testing."""
    # flow.testing is typed against pytest, so the test extra is part of what mypy reads.
    session.install("-e", f"{ROOT / 'core'}[postgres,mysql,test]")
    session.install("mypy>=1.10", "types-PyYAML")
    session.run("mypy", *TYPED_STRICT, *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Install flow and run every example DAG on the embedded default (SQLite in .flow-demo)."""
    _install_core(session)
    if not (ROOT / "examples").is_dir():
        session.error("no examples/ folder to run")
    home = ROOT / ".flow-demo"
    env = {
        "FLOW_HOME": str(home),
        "FLOW__CORE__DAGS_FOLDER": str(ROOT / "examples"),
        # the connections example reads this connection; the password is masked in its log
        "FLOW_CONN_EXAMPLE_API": "http://demo:s3cr3t-demo@127.0.0.1:8080/api",
    }
    session.run("flow", "db", "migrate", env=env)
    session.run("flow", "dags", "test", "--all", env=env)
    session.log(f"logs and database are in {home}")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Print the benchmark figures (never asserted in tests)."""
    _install_core(session)
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)


# pytest: the conformance page is generated from the suites, which are pytest classes
DOCS_DEPS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "pymdown-extensions>=10.7", "pytest>=8"]


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (offline) into build/site.

    The CLI reference, the conformance tests, the records and the plugin package pages are
    generated from the code during the build (docs/_gen/hooks.py)."""
    _install_core(session)
    session.install(*DOCS_DEPS)
    session.run("mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """flow's own executors, operators, backends and timetables through their conformance
    suites, strictly; the JSON report goes to build/conformance.json."""
    _install_core(session)
    session.install(*TEST_DEPS)
    report = ROOT / "build" / "conformance.json"
    report.parent.mkdir(exist_ok=True)
    session.run("pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "--timeout=300",
                "--flow-conformance-strict", f"--flow-conformance-report={report}",
                str(ROOT / "core" / "tests" / "builtin_conformance"), *session.posargs,
                env={"FLOW_HOME": session.create_tmp()})


@nox.session(python=PYTHON)
def new_plugin(session: nox.Session) -> None:
    """Create plugins/flow-NAME from plugins/_template: nox -s new_plugin -- NAME [--dir DIR]."""
    if not session.posargs:
        session.error("usage: nox -s new_plugin -- NAME [--dir DIR]")
    args = list(session.posargs)
    if "--dir" not in args:
        args += ["--dir", str(ROOT / "plugins")]
    _install_core(session)
    session.run("flow", "plugins", "new", *args)
