"""An isolated flow installation for one test: FLOW_HOME, a migrated database, a plugin manager.

Used by the fixtures of :mod:`flow.testing.fixtures` and by the conformance suites, so an ordinary
plugin test and a suite see the same environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class FlowEnvironment:
    """What :func:`isolated_flow_home` set up. Child processes (``flow tasks run``) inherit it
    through the environment variables it set."""

    home: Path
    dags_folder: Path
    database_url: str

    @property
    def engine(self) -> Any:
        from flow.store.session import get_engine

        return get_engine(self.database_url)

    def log_files(self) -> list[Path]:
        """Every task log file written so far, oldest first."""
        return sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)


@contextlib.contextmanager
def isolated_flow_home(home: Path, monkeypatch: pytest.MonkeyPatch,
                       database_url: str | None = None) -> Iterator[FlowEnvironment]:
    """Point flow at ``home`` (``FLOW_HOME``, dags folder, a Fernet key) and migrate a database:
    SQLite in ``home`` unless ``database_url`` names another (it must exist and be empty)."""
    from cryptography.fernet import Fernet

    from flow.secrets.masking import reset_masker
    from flow.store.migrate import upgrade
    from flow.store.session import dispose_engines, get_engine

    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{home / 'flow.db'}"
    for name in list(os.environ):
        if name.startswith(("FLOW_CONN_", "FLOW_VAR_", "FLOW__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOW_HOME", str(home))
    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("FLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    dispose_engines()
    reset_masker()
    upgrade(get_engine(url))
    try:
        yield FlowEnvironment(home, dags, url)
    finally:
        dispose_engines()
        reset_masker()


@contextlib.contextmanager
def isolated_plugins(strict: bool = True) -> Iterator[Any]:
    """A fresh, loaded :class:`flow.plugins.PluginManager`, active (``flow.plugins.current()``)
    for the block and for threads started in it; strict, so a broken plugin fails the test."""
    from flow.config import Config
    from flow.plugins import PluginManager, activate, set_current

    manager = PluginManager(Config(), strict=strict).load()
    set_current(manager)
    try:
        with activate(manager):
            yield manager
    finally:
        set_current(None)


class PluginRegistrar:
    """``register_plugin(obj)``: registers on the isolated manager, unregistered at teardown."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.names: list[str] = []

    def __call__(self, plugin: object, name: str | None = None) -> Any:
        from flow.plugins import ACTIVE, PluginError

        info = self.manager.register(plugin, name=name)
        if info.status != ACTIVE:
            raise PluginError(f"plugin {info.name} was not registered: {info.reason}")
        self.names.append(info.name)
        return info

    def unregister_all(self) -> None:
        for name in reversed(self.names):
            self.manager.unregister(name)
        self.names.clear()
