"""Run the ``flow`` CLI in-process (CliRunner) against the real metadata databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flow.cli.main import cli
from flow.plugins import PluginManager, activate
from flow.secrets.masking import reset_masker


@pytest.fixture
def flow_cli(flow_home: object) -> Iterator[Callable[..., Result]]:
    """``flow_cli("connections", "list")`` -> the click Result (stdout and stderr separate)."""
    reset_masker()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    with activate(PluginManager().load()):
        yield invoke
    reset_masker()


class ActionRecorder:
    def __init__(self) -> None:
        self.actions: list[tuple[str, str, str, dict[str, Any]]] = []

    def flow_user_action(self, actor: str, action: str, target: str,
                         details: dict[str, Any]) -> None:
        self.actions.append((actor, action, target, details))


@pytest.fixture
def actions(flow_cli: object) -> ActionRecorder:
    """Records the flow_user_action calls of the commands the test runs."""
    from flow.plugins import current

    recorder = ActionRecorder()
    current().register(recorder, "action-recorder")
    return recorder


@pytest.fixture(params=["postgresql", "mariadb"])
def empty_server_url(request: pytest.FixtureRequest, flow_home: object,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A freshly created, empty (unmigrated) database on each server, set as the flow DB."""
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = {
        "postgresql": os.environ.get("FLOW_TEST_POSTGRES_URL",
                                     "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        "mariadb": os.environ.get("FLOW_TEST_MARIADB_URL",
                                  "mysql+pymysql://root@127.0.0.1:3306/test"),
    }[request.param]
    name = f"flow_empty_{uuid.uuid4().hex[:8]}"
    quoted = f'"{name}"' if request.param == "postgresql" else f"`{name}`"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {quoted}"))
    except Exception as err:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{request.param} server unavailable: {err}")
        pytest.skip(f"{request.param} server unavailable: {err}; set CI=true to fail instead")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("FLOW__DATABASE__URL", url)
    try:
        yield url
    finally:
        from flow.store.session import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            force = " WITH (FORCE)" if request.param == "postgresql" else ""
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        admin.dispose()
