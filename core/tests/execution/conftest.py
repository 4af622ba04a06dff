"""Fixtures for running tasks and DAGs in-process against each metadata database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runner_helpers import Store
from sqlalchemy import Engine

from flow.config import Config
from flow.plugins import PluginManager, activate


@pytest.fixture
def engine(db_url: str) -> Engine:
    from flow.store.session import get_engine

    return get_engine(db_url)


@pytest.fixture
def plugins(db_url: str) -> Iterator[PluginManager]:
    """A fresh plugin manager, active for the test (what `current()` returns inside tasks)."""
    manager = PluginManager(Config()).load()
    with activate(manager):
        yield manager


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)
