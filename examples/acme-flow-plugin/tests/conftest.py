"""flow.testing's fixtures, and an Acme warehouse connection in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flow.testing.fixtures import (  # noqa: F401 - fixtures are found by name
    dag_files,
    flow_env,
    flow_plugins,
    register_plugin,
    run_dag,
)


@pytest.fixture
def warehouse(flow_env: Any, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """The default warehouse connection, pointing at an empty folder."""
    folder = flow_env.home / "warehouse"
    folder.mkdir()
    monkeypatch.setenv("FLOW_CONN_ACME_WAREHOUSE_DEFAULT", json.dumps(
        {"conn_type": "acme_warehouse", "host": str(folder), "password": "acme-t0ken"}))
    return folder
