"""Fake installed distributions: a ``*.dist-info`` folder and a plugin module on ``sys.path``.

They go through the same discovery as a real ``pip install``: importlib-metadata finds the
dist-info, the ``[flow.plugins]`` entry point names the module, and the manager imports it.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flow.config import Config


@dataclass
class FakeDistribution:
    name: str
    version: str
    entry_point: str
    module: str
    site: Path


FakeDistributionFactory = Callable[..., FakeDistribution]


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                      ) -> Iterator[FakeDistributionFactory]:
    """``fake_distribution(source, name="flow-fake", entry_point=None)`` installs a distribution
    whose plugin module holds ``source``; returns where. Each gets its own site folder and a
    unique module name, so no test sees another's modules."""
    modules: list[str] = []

    def install(source: str, name: str = "flow-fake", version: str = "1.2.3",
                entry_point: str | None = None, on_sys_path: bool = True) -> FakeDistribution:
        module = f"{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}_plugin"
        site = tmp_path / f"site-{module}"
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        entry_point = entry_point or name.removeprefix("flow-")
        (dist_info / "entry_points.txt").write_text(
            f"[flow.plugins]\n{entry_point} = {module}\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        if on_sys_path:
            monkeypatch.syspath_prepend(str(site))
        modules.append(module)
        return FakeDistribution(name, version, entry_point, module, site)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config reading no flow.toml, with the given ``FLOW__...`` variables as its environment."""

    def make(**environ: str) -> Config:
        return Config(path=tmp_path / "absent-flow.toml", environ=dict(environ))

    return make
