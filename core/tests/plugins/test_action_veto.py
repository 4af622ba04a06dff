"""A ``flow_user_action`` listener may refuse an action (``ActionVetoed``): the action is rolled
back whole and the user reads the refusal, from the REST API, the web UI and the CLI alike. Any
other exception of a listener is logged and the action goes on.

The plugins are installed as distributions (a dist-info and an entry point), the way
``pip install`` would; the databases are real (SQLite, PostgreSQL, MariaDB).
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from flow.exceptions import ActionVetoed
from flow.plugins import PluginManager, activate

PASSWORD = "correct horse battery"
DAG_ID = "veto_demo"
DAG_FILE = textwrap.dedent('''
    from datetime import datetime

    from flow import DAG
    from flow.operators import EmptyOperator

    with DAG("veto_demo", schedule=None, start_date=datetime(2024, 1, 1)):
        EmptyOperator(task_id="only")
''')

FREEZE_PLUGIN = """
    from flow import hookimpl
    from flow.exceptions import ActionVetoed

    @hookimpl
    def flow_user_action(action, details):
        if action.startswith("user."):  # the tests log in and make their users
            return
        raise ActionVetoed("changes are frozen for the release")
"""

BROKEN_PLUGIN = """
    from flow import hookimpl

    @hookimpl
    def flow_user_action(action, target):
        raise RuntimeError(f"listener is broken ({action})")
"""

REFUSAL = "was refused by plugin 'freeze' (flow-freeze) and nothing was changed: changes " \
          "are frozen for the release"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def parsed_dag(db_url: str, flow_home: Path) -> str:
    from flow.scheduling.processor import DagProcessor

    (flow_home / "dags" / "veto_demo.py").write_text(DAG_FILE)
    DagProcessor(flow_home / "dags").process(force=True)
    return DAG_ID


@pytest.fixture
def install(fake_distribution: Callable[..., Any]) -> Callable[[str, str], None]:
    def make(name: str, source: str) -> None:
        fake_distribution(source, name=f"flow-{name}", entry_point=name)

    return make


@pytest.fixture
def app(parsed_dag: str) -> Callable[[], Any]:
    """Builds the web app once the test installed its plugins, with users of each role."""
    def build() -> Any:
        from flow.store.session import session_scope
        from flow.web.app import create_app
        from flow.web.users import create_token, create_user

        application = create_app(plugins=PluginManager().load())
        application.config["TESTING"] = True
        with session_scope() as session:
            create_user(session, "admin", PASSWORD, "admin")
            application.config["test_token"] = create_token(session, "admin", "tests")
        return application

    return build


@pytest.fixture
def flow_cli(parsed_dag: str) -> Iterator[Callable[..., Result]]:
    from flow.cli.main import cli
    from flow.secrets.masking import reset_masker

    reset_masker()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        with activate(PluginManager().load()):
            return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    reset_masker()


def _browser(application: Any) -> tuple[Any, str]:
    client = application.test_client()
    page = client.get("/login").get_data(as_text=True)
    logged_in = client.post("/login", data={"username": "admin", "password": PASSWORD,
                                            "csrf_token": _csrf(page)})
    assert logged_in.status_code == 302, logged_in.get_data(as_text=True)
    return client, _csrf(client.get("/dags").get_data(as_text=True))


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def _state() -> dict[str, Any]:
    """What the four actions would change, read in a transaction of its own."""
    from flow.secrets.database import load_connection, load_variable
    from flow.store.models import DagModel, DagRun, EventLog
    from flow.store.session import session_scope

    with session_scope() as session:
        dag = session.get(DagModel, DAG_ID)
        assert dag is not None
        return {
            "runs": session.scalar(select(func.count()).select_from(DagRun)
                                   .where(DagRun.dag_id == DAG_ID)),
            "paused": dag.is_paused,
            "connection": load_connection("frozen_conn", session=session),
            "variable": load_variable("frozen_var", session=session),
            "events": session.scalars(select(EventLog.action)
                                      .where(~EventLog.action.startswith("user."))).all(),
        }


def _nothing_changed(before: dict[str, Any]) -> None:
    after = _state()
    assert after == before
    assert after["runs"] == 0 and after["connection"] is None and after["variable"] is None
    assert after["events"] == []  # the event log's row was rolled back with the action


def _everything_changed(before: dict[str, Any]) -> None:
    after = _state()
    assert after["runs"] == 1
    assert after["paused"] is (not before["paused"])
    assert after["connection"] is not None and after["connection"].host == "db.example"
    assert after["variable"] == "42"
    assert sorted(after["events"]) == ["connection.create", "dag.pause" if after["paused"]
                                       else "dag.unpause", "dag_run.trigger",
                                       "variable.create"]


# ------------------------------------------------------------------------------ the three sources


def _api_actions(application: Any) -> list[Any]:
    client = application.test_client()
    headers = {"Authorization": f"Bearer {application.config['test_token']}"}
    paused = _state()["paused"]
    return [
        client.post(f"/api/v1/dags/{DAG_ID}/dagRuns", json={}, headers=headers),
        client.patch(f"/api/v1/dags/{DAG_ID}", json={"is_paused": not paused},
                     headers=headers),
        client.post("/api/v1/connections", headers=headers, json={
            "conn_id": "frozen_conn", "conn_type": "postgres", "host": "db.example",
            "password": "s3cret"}),
        client.post("/api/v1/variables", json={"key": "frozen_var", "value": "42"},
                    headers=headers),
    ]


def _ui_actions(application: Any) -> list[Any]:
    client, csrf = _browser(application)
    html = {"Accept": "text/html"}
    paused = _state()["paused"]
    return [
        client.post(f"/dags/{DAG_ID}/trigger", data={"csrf_token": csrf}, headers=html),
        client.post(f"/dags/{DAG_ID}/pause", headers=html, follow_redirects=True,
                    data={"csrf_token": csrf, "paused": "false" if paused else "true"}),
        client.post("/connections/new", headers=html, data={
            "csrf_token": csrf, "conn_id": "frozen_conn", "conn_type": "postgres",
            "host": "db.example", "password": "s3cret"}),
        client.post("/variables/new", data={"csrf_token": csrf, "key": "frozen_var",
                                            "val": "42"}, headers=html),
    ]


def _cli_actions(flow_cli: Callable[..., Result]) -> list[Result]:
    paused = _state()["paused"]
    return [
        flow_cli("dags", "trigger", DAG_ID),
        flow_cli("dags", "unpause" if paused else "pause", DAG_ID),
        flow_cli("connections", "add", "frozen_conn", "--conn-type", "postgres",
                 "--conn-host", "db.example", "--conn-password", "s3cret"),
        flow_cli("variables", "set", "frozen_var", "42"),
    ]


def test_a_veto_rolls_back_api_actions_and_answers_503_naming_the_plugin(
        install: Callable[[str, str], None], app: Callable[[], Any]) -> None:
    install("freeze", FREEZE_PLUGIN)
    application = app()
    before = _state()

    responses = _api_actions(application)

    for response in responses:
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert REFUSAL in response.get_json()["detail"]
    assert "dag_run.trigger of 'veto_demo/" in responses[0].get_json()["detail"]
    assert "s3cret" not in "".join(r.get_data(as_text=True) for r in responses)
    _nothing_changed(before)


def test_a_veto_rolls_back_ui_actions_and_shows_the_refusal(
        install: Callable[[str, str], None], app: Callable[[], Any]) -> None:
    install("freeze", FREEZE_PLUGIN)
    application = app()
    before = _state()

    trigger, pause, connection, variable = _ui_actions(application)

    for flashed in (trigger, pause):  # the scheduling actions flash on the page
        assert flashed.status_code == 200
        assert 'class="flash error"' in flashed.get_data(as_text=True)
        assert REFUSAL.replace("'", "&#39;") in flashed.get_data(as_text=True)
    for page in (connection, variable):  # the forms answer with an error page, no traceback
        assert page.status_code == 503
        assert page.mimetype == "text/html"
        assert REFUSAL.replace("'", "&#39;") in page.get_data(as_text=True)
    _nothing_changed(before)


def test_a_veto_rolls_back_cli_actions_and_exits_1_with_the_message(
        install: Callable[[str, str], None], flow_cli: Callable[..., Result]) -> None:
    install("freeze", FREEZE_PLUGIN)
    before = _state()

    results = _cli_actions(flow_cli)

    for result in results:
        assert result.exit_code == 1, result.output
        assert REFUSAL in " ".join(result.output.split())
        assert "Traceback" not in result.output
    _nothing_changed(before)


@pytest.mark.parametrize("source", ["api", "ui", "cli"])
def test_a_listener_raising_anything_else_stops_no_action(
        source: str, install: Callable[[str, str], None], app: Callable[[], Any],
        flow_cli: Callable[..., Result], caplog: pytest.LogCaptureFixture) -> None:
    install("broken", BROKEN_PLUGIN)
    before = _state()

    with caplog.at_level(logging.ERROR, logger="flow.plugins"):
        if source == "cli":
            assert [r.exit_code for r in _cli_actions(flow_cli)] == [0, 0, 0, 0]
        elif source == "api":
            statuses = [r.status_code for r in _api_actions(app())]
            assert statuses == [201, 200, 201, 201]
        else:
            statuses = [r.status_code for r in _ui_actions(app())]
            assert statuses == [302, 200, 302, 302]

    _everything_changed(before)
    assert "plugin=broken distribution=flow-broken hook=flow_user_action" in caplog.text


# ------------------------------------------------------------------------------- the dispatcher


def test_listeners_after_the_refusing_one_are_not_called(make_config: Any) -> None:
    heard: list[str] = []

    class Listener:
        def __init__(self, name: str) -> None:
            self.name = name

        def flow_user_action(self, action: str) -> None:
            heard.append(self.name)

    class Refuser:
        def flow_user_action(self, action: str) -> None:
            raise ActionVetoed(f"no {action} today")

    manager = PluginManager(make_config())
    # pluggy calls the last registered first
    manager.register(Listener("after"), name="after")
    manager.register(Refuser(), name="policy")
    manager.register(Listener("before"), name="before")

    with pytest.raises(ActionVetoed) as refused:
        manager.user_action("alice", "dag.pause", "etl", {"source": "cli"})

    assert heard == ["before"]
    assert refused.value.plugin == "policy" and refused.value.reason == "no dag.pause today"
    assert str(refused.value) == ("dag.pause of 'etl' was refused by plugin 'policy' "
                                  "(<registered>) and nothing was changed: no dag.pause today")


audit_rows = Table("veto_test_audit", MetaData(), Column("id", Integer, primary_key=True),
                   Column("action", String(100), nullable=False))


@pytest.fixture
def plugin_table(db_url: str) -> Iterator[Table]:
    """A table of a plugin's own, beside flow's."""
    from flow.store.session import get_engine

    engine = get_engine()
    audit_rows.create(engine, checkfirst=True)
    yield audit_rows
    audit_rows.drop(engine, checkfirst=True)


def test_what_a_listener_writes_through_the_transaction_commits_with_the_action_or_not_at_all(
        plugin_table: Table, make_config: Any) -> None:
    from flow.store.event_log import record_user_action
    from flow.store.models import EventLog
    from flow.store.session import session_scope

    refuse: list[bool] = []

    class Writer:
        def flow_user_action(self, action: str, transaction: Any) -> None:
            transaction.execute(insert(plugin_table).values(action=action))

    class BrokenWriter:  # its failed statement must not spoil the action's transaction
        def flow_user_action(self, action: str, transaction: Any) -> None:
            transaction.execute(insert(plugin_table).values(action=None))

    class Refuser:
        def flow_user_action(self, action: str) -> None:
            if refuse:
                raise ActionVetoed("refused")

    manager = PluginManager(make_config())
    manager.register(Refuser(), name="refuser")
    manager.register(BrokenWriter(), name="broken")
    manager.register(Writer(), name="writer")  # called first

    record_user_action("alice", "variable.create", "kept", source="cli", plugins=manager)
    refuse.append(True)
    with pytest.raises(ActionVetoed), session_scope() as session:
        record_user_action("alice", "variable.delete", "kept", source="cli", plugins=manager,
                           session=session)

    with session_scope() as session:
        assert session.scalars(select(plugin_table.c.action)).all() == ["variable.create"]
        assert session.scalars(select(EventLog.action)).all() == ["variable.create"]
