"""flow's pytest plugin (the ``pytest11`` entry point of flow-core).

Every pytest run in an environment with flow-core installed loads this module, so it does nothing
on import but add options and markers: no SQLAlchemy, no Flask, no plugin loading. Fixtures and
the conformance suites live in :mod:`flow.testing` and are imported by the tests that use them.
"""

from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("flow", "flow conformance suites")
    group.addoption("--flow-conformance-strict", action="store_true", default=False,
                    help="Run conformance tests newer than the suite's pinned version as strict.")
    group.addoption("--flow-conformance-report", metavar="PATH", default=None,
                    help="Write a JSON conformance report to PATH.")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "flow_capability(name): the conformance capability a test needs")
    config.addinivalue_line(
        "markers", "flow_since(version): the flow-core version that introduced a test")
