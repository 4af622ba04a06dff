"""What every conformance suite shares: capabilities, versions, the environment fixtures.

A suite is a class whose tests carry two markers (set by :func:`conformance`): the capabilities a
test needs and the flow-core version that introduced it. The pytest plugin
(:mod:`flow.testing.pytest_plugin`) reads them with the subclass's ``claims`` and
``conformance_version``; this module only declares.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from flow.testing.capabilities import CAPABILITIES
from flow.testing.dags import DagFiles
from flow.testing.environment import FlowEnvironment, isolated_flow_home, isolated_plugins

_F = TypeVar("_F", bound=Callable[..., Any])

# The version of flow-core whose tests a suite subclass runs strictly when it pins none.
SUITE_VERSION = "0.1"


def conformance(*capabilities: str, since: str = "0.1") -> Callable[[_F], _F]:
    """Mark a suite test: the capabilities it needs (none: every component must pass it) and the
    flow-core version that introduced it."""
    known = {name for group in CAPABILITIES.values() for name in group}
    unknown = [name for name in capabilities if name not in known]
    if unknown:
        raise ValueError(f"unknown conformance capability {', '.join(unknown)}; add it to "
                         f"flow.testing.capabilities.CAPABILITIES")

    def mark(function: _F) -> _F:
        marked: Any = pytest.mark.flow_since(since)(function)
        if capabilities:
            marked = pytest.mark.flow_capability(*capabilities)(marked)
        result: _F = marked
        return result

    return mark


def abstract_fixture(name: str, what: str) -> Any:
    """A fixture the suite subclass must override; left alone, every test using it fails with a
    message naming it."""

    def fixture(self: Any) -> Any:
        pytest.fail(f"{type(self).__name__} must override the fixture {name!r} of "
                    f"{type(self).__mro__[1].__name__}: {what}", pytrace=False)

    fixture.__name__ = name
    fixture.__doc__ = f"Override me: {what}"
    return pytest.fixture(name=name)(fixture)


class ConformanceSuite:
    """Base of the suites. A subclass (named ``Test...`` so pytest collects it) sets:

    * ``claims``: the capabilities its component has (see ``flow.testing.CAPABILITIES``);
    * ``conformance_version``: the flow-core version whose tests must pass; newer tests run as
      non-strict expected failures (``--flow-conformance-strict`` runs them strictly);
    * ``distribution``: the plugin's distribution name, for the report;

    and overrides the suite's one factory fixture.
    """

    flow_suite: ClassVar[str] = ""
    claims: ClassVar[Collection[str]] = frozenset()
    conformance_version: ClassVar[str | None] = None
    distribution: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        known = CAPABILITIES.get(cls.flow_suite, {})
        unknown = sorted(set(cls.claims) - set(known))
        if unknown:
            raise TypeError(f"{cls.__qualname__} claims unknown {cls.flow_suite} capabilities "
                            f"{', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")

    def database_url(self) -> str | None:
        """The metadata database to test against; None is SQLite in the test's FLOW_HOME."""
        return None

    @pytest.fixture
    def flow_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[FlowEnvironment]:
        """An isolated FLOW_HOME with a migrated database."""
        with isolated_flow_home(tmp_path / "flow_home", monkeypatch,
                                self.database_url()) as environment:
            yield environment

    @pytest.fixture
    def flow_plugins(self, flow_env: FlowEnvironment) -> Iterator[Any]:
        """A fresh plugin manager, active for the test."""
        with isolated_plugins() as manager:
            yield manager

    @pytest.fixture
    def dag_files(self, flow_env: FlowEnvironment) -> DagFiles:
        return DagFiles(flow_env.dags_folder)
