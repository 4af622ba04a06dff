"""A failure to write the audit trail is logged and counted and never breaks the action it
records; with ``[audit] fail_closed`` a user action whose record cannot be written is refused
and rolled back, from the web UI, the REST API and the CLI alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from flow_audit import recorder, store


def _break_the_audit_table() -> None:
    """What a revoked grant or a broken migration looks like from here: appends fail."""
    engine = store.writer_engine()
    store.ensure_tables(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_record"))
        connection.execute(text("CREATE TABLE audit_record (unrelated INTEGER)"))
    engine.dispose()


def test_a_failed_write_is_logged_and_counted_and_the_action_still_happens(
        app: Any, users: dict[str, str], caplog: pytest.LogCaptureFixture,
        records: Callable[..., list[Any]]) -> None:
    from flow.secrets.database import load_variable

    _break_the_audit_table()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}
    stats = recorder.recorder().stats

    caplog.set_level(logging.ERROR, logger="flow_audit")
    created = client.post("/api/v1/variables", json={"key": "region", "value": "eu"},
                          headers=headers)
    assert not recorder.recorder().flush(timeout=2)
    recorder.reset()  # the exit: what is left is tried once more, then counted as dropped

    assert created.status_code == 201
    assert load_variable("region") == "eu"
    assert stats.failed_writes >= 2 and stats.written == 0 and stats.dropped == 1
    assert "could not write 1 audit record(s)" in caplog.text
    assert "1 audit record(s) could not be written before exit" in caplog.text
    assert "eu" not in caplog.text.replace("flow_audit", "")  # no record content in the log


def _state(dag_id: str) -> dict[str, Any]:
    """What the refused actions would have changed: the DAG's pause, the variable, the
    connection and flow's own event log."""
    from sqlalchemy import select

    from flow.secrets.database import load_connection, load_variable
    from flow.store.models import DagModel, EventLog
    from flow.store.session import session_scope

    with session_scope() as session:
        dag = session.get(DagModel, dag_id)
        assert dag is not None
        return {"paused": dag.is_paused, "variable": load_variable("region", session=session),
                "connection": load_connection("warehouse", session=session),
                "events": session.scalars(select(EventLog.action).where(
                    ~EventLog.action.startswith("user."))).all()}


def _act_from_api(app: Any, users: dict[str, str], dag_id: str, paused: bool) -> list[str]:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}
    responses = [
        client.patch(f"/api/v1/dags/{dag_id}", json={"is_paused": not paused},
                     headers=headers),
        client.post("/api/v1/variables", json={"key": "region", "value": "eu"},
                    headers=headers),
        client.post("/api/v1/connections", headers=headers, json={
            "conn_id": "warehouse", "conn_type": "postgres", "password": "s3cret"}),
    ]
    for response in responses:
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
    return [r.get_json()["detail"] for r in responses]


def _act_from_ui(client: Any, csrf: str, dag_id: str, paused: bool) -> list[str]:
    import html

    accept = {"Accept": "text/html"}
    pause = client.post(f"/dags/{dag_id}/pause", follow_redirects=True, headers=accept,
                        data={"csrf_token": csrf, "paused": "false" if paused else "true"})
    variable = client.post("/variables/new", headers=accept,
                           data={"csrf_token": csrf, "key": "region", "val": "eu"})
    connection = client.post("/connections/new", headers=accept, data={
        "csrf_token": csrf, "conn_id": "warehouse", "conn_type": "postgres",
        "password": "s3cret"})
    assert pause.status_code == 200 and 'class="flash error"' in pause.get_data(as_text=True)
    assert variable.status_code == connection.status_code == 503
    return [html.unescape(r.get_data(as_text=True)) for r in (pause, variable, connection)]


def _act_from_cli(dag_id: str, paused: bool) -> list[str]:
    from click.testing import CliRunner

    from flow.cli.main import cli

    outputs = []
    for args in (["dags", "unpause" if paused else "pause", dag_id],
                 ["variables", "set", "region", "eu"],
                 ["connections", "add", "warehouse", "--conn-type", "postgres",
                  "--conn-password", "s3cret"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        outputs.append(" ".join(result.output.split()))
    return outputs


@pytest.mark.parametrize("source", ["api", "ui", "cli"])
def test_fail_closed_refuses_an_action_whose_record_cannot_be_written(
        source: str, app: Any, users: dict[str, str], parsed_dag: str,
        browser_as: Callable[[str], tuple[Any, str]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FLOW__AUDIT__FAIL_CLOSED", "true")
    recorder.reset()
    before = _state(parsed_dag)
    # Logged in before the trail breaks: a login would be refused too.
    client, csrf = browser_as("admin") if source == "ui" else (None, "")
    _break_the_audit_table()

    with caplog.at_level(logging.ERROR, logger="flow_audit"):
        if source == "api":
            messages = _act_from_api(app, users, parsed_dag, before["paused"])
        elif source == "ui":
            messages = _act_from_ui(client, csrf, parsed_dag, before["paused"])
        else:
            messages = _act_from_cli(parsed_dag, before["paused"])

    for message, action in zip(messages, ("dag.unpause" if before["paused"] else "dag.pause",
                                          "variable.create", "connection.create"),
                               strict=True):
        assert (f"{action} of " in message and "was refused by plugin 'audit' (flow-audit) and "
                "nothing was changed: its audit record cannot be written" in message
                and "[audit] fail_closed = true" in message), message
        assert "s3cret" not in message
    assert _state(parsed_dag) == before  # nothing changed, not even flow's event log
    assert recorder.recorder().stats.failed_writes == 3
    assert caplog.text.count("so [audit] fail_closed refuses it") == 3


def test_fail_closed_writes_each_record_with_its_action(
        app: Any, users: dict[str, str], parsed_dag: str, db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from flow.cli.main import cli
    from flow.store.session import make_engine

    monkeypatch.setenv("FLOW__AUDIT__FAIL_CLOSED", "true")
    recorder.reset()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {users['admin']}"}

    created = client.post("/api/v1/variables", json={"key": "region", "value": "eu"},
                          headers=headers)
    paused = CliRunner().invoke(cli, ["dags", "pause", parsed_dag], catch_exceptions=False)

    assert created.status_code == 201 and paused.exit_code == 0, paused.output
    assert recorder.recorder().pending() == 0  # in the chain already, not in a buffer
    engine = make_engine(db_url)
    try:
        chain = list(store.walk(engine))
    finally:
        engine.dispose()
    assert [(r.action, r.source) for r in chain] == [("variable.create", "api"),
                                                    ("dag.pause", "cli")]
