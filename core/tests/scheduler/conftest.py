"""Helpers of the scheduler tests: DAG files written into FLOW_HOME/dags and parsed for real."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from flow.config import Config
from flow.scheduling.processor import DagProcessor
from flow.store.session import get_engine

from .helpers import LEDGER_TASK, create_ledger, drop_ledger

WriteDag = Callable[[str, str], Path]


@pytest.fixture
def ledger_engine(engine: Engine, flow_home: Path) -> Iterator[Engine]:
    """The engine, with the ledger table that test tasks write one row per try into."""
    (flow_home / "dags" / "ledger_task.py").write_text(LEDGER_TASK)
    create_ledger(engine)
    yield engine
    drop_ledger(engine)


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture
def write_dag(flow_home: Path) -> WriteDag:
    """Write ``source`` as dags/``name`` (dedented); returns the path."""

    def write(name: str, source: str) -> Path:
        path = flow_home / "dags" / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def parse(flow_home: Path, engine: Engine) -> Callable[[], None]:
    """Parse the DAG folder into the database, as the scheduler's processor does."""

    def run() -> None:
        DagProcessor(flow_home / "dags", engine=engine, config=Config()).process()

    return run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: minutes-long scheduler runs; selected with -m soak or FLOW_SOAK=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import os

    # Soak tests run in their own session (`nox -s soak`), never in the default suite: they are
    # deselected here rather than skipped, so the default run reports no skip for them.
    if os.environ.get("FLOW_SOAK") == "1" or "soak" in (config.getoption("-m") or ""):
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]
