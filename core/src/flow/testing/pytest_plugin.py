"""flow's pytest plugin (the ``pytest11`` entry point of flow-core).

Every pytest run in an environment with flow-core installed loads this module, so it does nothing
on import but add options and markers: no SQLAlchemy, no Flask, no plugin loading. Fixtures and
the conformance suites live in :mod:`flow.testing` and are imported by the tests that use them.

The hooks below only read markers and class attributes of conformance suites
(:class:`flow.testing.suites.base.ConformanceSuite`), so a run without one pays nothing:

* a test whose ``flow_capability`` the suite subclass does not claim is skipped, naming it;
* a test newer (``flow_since``) than the version a suite subclass pins runs as a non-strict
  expected failure, unless ``--flow-conformance-strict``;
* the terminal summary lists each suite's claimed and unclaimed capabilities, and
  ``--flow-conformance-report=PATH`` writes them with every test's outcome as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# The suites' assertions are what a plugin author reads when their plugin falls short: have
# pytest rewrite them (it only does so by itself for test files and pytest11 modules).
# Registering only records a name; nothing is imported.
pytest.register_assert_rewrite("flow.testing.suites", "flow.testing.fixtures")

_SUITES_KEY = "_flow_conformance_suites"
_OUTCOMES_KEY = "_flow_conformance_outcomes"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("flow", "flow conformance suites")
    group.addoption("--flow-conformance-strict", action="store_true", default=False,
                    help="Run conformance tests newer than the suite's pinned version as strict.")
    group.addoption("--flow-conformance-report", metavar="PATH", default=None,
                    help="Write a JSON conformance report to PATH.")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "flow_capability(*names): the conformance capabilities a test needs")
    config.addinivalue_line(
        "markers", "flow_since(version): the flow-core version that introduced a test")
    setattr(config, _SUITES_KEY, {})
    setattr(config, _OUTCOMES_KEY, {})


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)``; stops at the first part that is not a number."""
    parts: list[int] = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits or digits != part:
            if digits and part.startswith(digits):
                parts.append(int(digits))
            break
        parts.append(int(digits))
    return tuple(parts)


def _suite_of(item: Any) -> type | None:
    cls = getattr(item, "cls", None)
    return cls if cls is not None and getattr(cls, "flow_suite", None) else None


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    suites: dict[str, dict[str, Any]] = getattr(config, _SUITES_KEY, {})
    strict = bool(config.getoption("flow_conformance_strict", False))
    for item in items:
        cls = _suite_of(item)
        if cls is None:
            continue
        claims = set(getattr(cls, "claims", ()) or ())
        needed = [name for mark in item.iter_markers("flow_capability") for name in mark.args]
        entry = suites.setdefault(cls.__qualname__, {
            "suite": getattr(cls, "flow_suite", ""),
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "pinned_version": getattr(cls, "conformance_version", None),
            "distribution": getattr(cls, "distribution", None),
            "claimed": sorted(claims), "capabilities": set()})
        entry["capabilities"].update(needed)
        missing = [name for name in needed if name not in claims]
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"capability {', '.join(missing)} not claimed by {cls.__qualname__} "
                       f"(claims: {', '.join(sorted(claims)) or 'none'})"))
            continue
        since_mark = item.get_closest_marker("flow_since")
        pinned = getattr(cls, "conformance_version", None)
        if strict or since_mark is None or not pinned:
            continue
        since = str(since_mark.args[0])
        if version_tuple(since) > version_tuple(str(pinned)):
            item.add_marker(pytest.mark.xfail(
                strict=False, reason=f"added in flow-core {since}; {cls.__qualname__} pins "
                                     f"conformance version {pinned}"))


def pytest_runtest_logreport(report: Any) -> None:
    # Every test's outcome, keyed by node id; the report keeps those of suite classes.
    outcomes = _active_outcomes
    if outcomes is None or (report.when != "call" and report.outcome == "passed"):
        return
    if report.when != "call" and report.failed:
        outcome = "error"
    elif hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    else:
        outcome = report.outcome
    outcomes[report.nodeid] = {"outcome": outcome, "reason": _reason(report)}


_active_outcomes: dict[str, dict[str, Any]] | None = None


def _reason(report: Any) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = str(getattr(report, "longreprtext", "") or "")
        return text.strip().splitlines()[-1][:500] if text.strip() else "failed"
    return ""


def pytest_sessionstart(session: Any) -> None:
    global _active_outcomes
    _active_outcomes = getattr(session.config, _OUTCOMES_KEY, None)


def _suite_reports(config: Any) -> list[dict[str, Any]]:
    suites: dict[str, dict[str, Any]] = getattr(config, _SUITES_KEY, {})
    outcomes: dict[str, dict[str, Any]] = getattr(config, _OUTCOMES_KEY, {})
    reports = []
    for name, entry in suites.items():
        tests = {node: outcome for node, outcome in outcomes.items()
                 if f"::{name}::" in node}
        claimed = entry["claimed"]
        reports.append({
            "class": entry["class"], "suite": entry["suite"],
            "pinned_version": entry["pinned_version"], "distribution": entry["distribution"],
            "claimed_capabilities": claimed,
            "unclaimed_capabilities": sorted(entry["capabilities"] - set(claimed)),
            "tests": tests,
        })
    return reports


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    reports = [report for report in _suite_reports(config) if report["tests"]]
    if not reports:
        return
    terminalreporter.section("flow conformance")
    for report in reports:
        if not report["tests"]:
            continue  # deselected
        counts: dict[str, int] = {}
        for result in report["tests"].values():
            counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests ran"
        terminalreporter.write_line(f"{report['class']} ({report['suite']}): {summary}")
        terminalreporter.write_line(
            f"  claimed:   {', '.join(report['claimed_capabilities']) or 'none'}")
        terminalreporter.write_line(
            f"  unclaimed: {', '.join(report['unclaimed_capabilities']) or 'none'}")
    path = config.getoption("flow_conformance_report", None)
    if path:
        terminalreporter.write_line(f"conformance report written to {path}")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    global _active_outcomes
    config = session.config
    path = config.getoption("flow_conformance_report", None)
    if path and not hasattr(config, "workerinput"):
        Path(path).write_text(json.dumps(build_report(config), indent=2, sort_keys=True) + "\n")
    _active_outcomes = None


def build_report(config: Any) -> dict[str, Any]:
    """The JSON report: versions, each suite's claims and every test's outcome."""
    from importlib import metadata

    try:
        core_version = metadata.version("flow-core")
    except metadata.PackageNotFoundError:
        core_version = "unknown"
    suites = _suite_reports(config)
    for suite in suites:
        distribution = suite["distribution"]
        suite["distribution_version"] = None
        if distribution:
            try:
                suite["distribution_version"] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                suite["distribution_version"] = "not installed"
    return {"suite_version": core_version, "flow_core_version": core_version,
            "strict": bool(config.getoption("flow_conformance_strict", False)),
            "suites": suites}
