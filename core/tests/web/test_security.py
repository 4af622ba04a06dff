"""Login, sessions, CSRF, redirects, escaping, secrets and the event log of user actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from .conftest import DAG_ID, PASSWORD, csrf_from, login

CANARY = "canary-Pw-5e1f9a"


def _events(action: str) -> list[Any]:
    from flow.store.models import EventLog
    from flow.store.session import session_scope

    with session_scope() as session:
        return list(session.scalars(select(EventLog).where(EventLog.action == action)))


def test_login_sets_a_hardened_session_cookie_and_records_the_login(
        app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    response = login(client, "admin")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert [e.actor for e in _events("user.login")] == ["admin"]
    assert client.get("/dags").status_code == 200


def test_cookie_is_secure_when_configured(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                          users: dict[str, str]) -> None:
    from flow.web.app import create_app

    monkeypatch.setenv("FLOW__WEBSERVER__COOKIE_SECURE", "true")
    response = login(create_app().test_client(), "admin")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_password_is_refused_and_recorded(app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    response = login(client, "admin", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/dags").status_code == 302
    assert [e.actor for e in _events("user.login_failed")] == ["admin"]


def test_a_password_reset_ends_existing_sessions(app: Flask, users: dict[str, str]) -> None:
    from flow.store.session import session_scope
    from flow.web.users import reset_password

    client = app.test_client()
    login(client, "op")
    assert client.get("/dags").status_code == 200
    with session_scope() as session:
        reset_password(session, "op", "a brand new password")
    assert client.get("/dags").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)",
                                    "\\\\evil.example"])
def test_login_never_redirects_off_site(app: Flask, users: dict[str, str], target: str) -> None:
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "viewer", "password": PASSWORD,
                                           "csrf_token": token, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dags"


def test_login_returns_to_the_local_page_asked_for(app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    first = client.get("/variables?x=1")
    assert first.status_code == 302 and "next=" in first.headers["Location"]
    token = csrf_from(client.get(first.headers["Location"]).get_data(as_text=True))
    response = client.post("/login", data={"username": "viewer", "password": PASSWORD,
                                           "csrf_token": token, "next": "/variables?x=1"})
    assert response.headers["Location"] == "/variables?x=1"


def test_a_form_without_the_csrf_token_is_refused(browser_as: Any) -> None:
    client, token = browser_as("admin")
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post("/pools", data={"name": "p", "slots": "1", **data})
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True)
    assert client.post("/pools", data={"name": "p", "slots": "1", "csrf_token": token}
                       ).status_code == 302


def test_the_login_form_itself_needs_the_csrf_token(app: Flask, users: dict[str, str]) -> None:
    response = app.test_client().post("/login", data={"username": "admin",
                                                      "password": PASSWORD})
    assert response.status_code == 400


def test_api_calls_with_the_session_cookie_need_the_csrf_header(browser_as: Any) -> None:
    client, token = browser_as("admin")
    body = {"key": "k1", "value": "v"}
    assert client.post("/api/v1/variables", json=body).status_code == 400
    response = client.post("/api/v1/variables", json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 201


def test_bearer_tokens_authenticate_and_unknown_ones_are_refused(
        app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    ok = client.get("/api/v1/dags", headers={"Authorization": f"Bearer {users['viewer']}"})
    assert ok.status_code == 200
    bad = client.get("/api/v1/dags", headers={"Authorization": "Bearer flow_nope"})
    assert bad.status_code == 401
    assert bad.mimetype == "application/problem+json"
    assert "flow users token create" in bad.json["detail"]


def test_only_the_hash_of_a_token_is_stored(app: Flask, users: dict[str, str]) -> None:
    from flow.store.models import ApiToken
    from flow.store.session import session_scope
    from flow.web.users import token_hash

    with session_scope() as session:
        stored = set(session.scalars(select(ApiToken.token_hash)))
    assert users["admin"] not in stored
    assert token_hash(users["admin"]) in stored


def test_markup_in_a_dag_id_conf_and_import_error_is_shown_as_text(
        browser_as: Any, parsed: str) -> None:
    from flow.store.models import DagModel, DagRun, ImportError_
    from flow.store.session import session_scope
    from flow.utils.timezone import utcnow

    evil = "<script>alert(1)</script>"
    with session_scope() as session:
        session.add(DagModel(dag_id=f"x{evil}", fileloc="/x.py", is_paused=False,
                             owners=evil, tags=[evil]))
        session.add(ImportError_(filename=f"/dags/{evil}.py", lineno=3, message=evil,
                                 stacktrace=evil))
        session.add(DagRun(dag_id=DAG_ID, run_id="r1", run_type="manual", state="success",
                           conf={"note": evil}, logical_date=utcnow()))
    client, _ = browser_as("viewer")
    for path in ("/dags", f"/dags/{DAG_ID}/runs"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/dags").get_data(as_text=True)


def test_errors_are_problem_documents_a_user_can_act_on(app: Flask,
                                                        users: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {users['op']}"}
    client = app.test_client()
    missing = client.get("/api/v1/dags/nope", headers=headers)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert missing.json["title"] == "Not Found" and "'nope'" in missing.json["detail"]
    bad = client.post("/api/v1/pools", json={"name": "p", "slots": "many"}, headers=headers)
    assert bad.status_code == 400 and "slots" in bad.json["detail"]
    paging = client.get("/api/v1/dags?limit=0", headers=headers)
    assert paging.status_code == 400 and "limit" in paging.json["detail"]
    forbidden = client.post("/api/v1/connections", json={"conn_id": "c", "conn_type": "http"},
                            headers=headers)
    assert forbidden.status_code == 403 and "admin" in forbidden.json["detail"]


def test_security_headers_forbid_framing_and_foreign_scripts(app: Flask) -> None:
    response = app.test_client().get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


CANARY_DAG = '''
from datetime import datetime
from flow import DAG, Connection, task

with DAG("canary_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def leak():
        conn = Connection.get("canary")
        print("the password is", conn.password)
        return "done"
    leak()
'''


def test_a_connection_password_never_leaves_in_clear(
        app: Flask, users: dict[str, str], browser_as: Any, flow_home: Path, db_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    from flow.execution.dag_test import run_dag_test
    from flow.scheduling.dagbag import load_dag_file
    from flow.scheduling.processor import DagProcessor

    admin = {"Authorization": f"Bearer {users['admin']}"}
    client = app.test_client()
    created = client.post("/api/v1/connections", headers=admin, json={
        "conn_id": "canary", "conn_type": "http", "host": "h", "password": CANARY,
        "extra": {"api_token": CANARY, "timeout": 3}})
    assert created.status_code == 201
    assert CANARY not in created.get_data(as_text=True)
    # An edit through the form without a password keeps it (write-only field).
    browser, token = browser_as("admin")
    browser.post("/connections/canary/edit", data={"conn_type": "http", "host": "h2",
                                                   "csrf_token": token})
    dag_path = flow_home / "dags" / "canary.py"
    dag_path.write_text(CANARY_DAG)
    DagProcessor(dag_path.parent).process(force=True)
    dag = load_dag_file(dag_path, str(dag_path.parent)).dags[0]
    result = run_dag_test(dag)
    assert result.state == "success"
    pages = [browser.get(p) for p in ("/connections", "/connections/canary/edit", "/events",
                                      "/dags", "/dags/canary_dag/runs",
                                      f"/dags/canary_dag/runs/{result.run_id}/tasks/leak")]
    base = f"/api/v1/dags/canary_dag/dagRuns/{result.run_id}/taskInstances/leak"
    api = [client.get(p, headers=admin) for p in (
        "/api/v1/connections", "/api/v1/connections/canary", "/api/v1/eventLogs",
        base, f"{base}/logs/1", f"{base}/xcomEntries")]
    for response in pages + api:
        assert response.status_code == 200, response.request.path
        assert CANARY not in response.get_data(as_text=True), response.request.path
    log_text = client.get(f"{base}/logs/1", headers=admin).json["content"]
    assert "the password is ***" in log_text
    for path in flow_home.rglob("*.log"):
        assert CANARY not in path.read_text(errors="replace"), path
    assert CANARY not in caplog.text
    assert CANARY not in _dump_database(db_url)


def _dump_database(url: str) -> str:
    from flow.store.models import Base
    from flow.store.session import get_engine

    chunks = []
    with get_engine(url).connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(text(f'SELECT * FROM "{table.name}"')
                                          if get_engine(url).dialect.name != "mysql" else
                                          text(f"SELECT * FROM `{table.name}`")):
                chunks.append(json.dumps([str(v) for v in row]))
    return "\n".join(chunks)


class ActionRecorder:
    def __init__(self) -> None:
        self.actions: list[tuple[str, str, str, dict[str, Any]]] = []

    def flow_user_action(self, actor: str, action: str, target: str,
                         details: dict[str, Any]) -> None:
        self.actions.append((actor, action, target, details))


def test_user_actions_reach_the_hook_and_the_event_log_with_their_source(db_url: str) -> None:
    from flow.plugins import PluginManager
    from flow.store.session import session_scope
    from flow.web.app import create_app
    from flow.web.users import create_token, create_user

    recorder = ActionRecorder()
    plugins = PluginManager().load()
    plugins.register(recorder, "recorder")
    app = create_app(plugins=plugins)
    with session_scope() as session:
        create_user(session, "root", PASSWORD, "admin")
        token = create_token(session, "root")
    client = app.test_client()
    login(client, "root", "nope")
    login(client, "root")
    csrf = csrf_from(client.get("/variables/new").get_data(as_text=True))
    client.post("/variables/new", data={"key": "region", "val": "eu", "csrf_token": csrf})
    api = {"Authorization": f"Bearer {token}"}
    client.post("/api/v1/connections", headers=api,
                json={"conn_id": "db", "conn_type": "postgres", "password": CANARY})
    client.delete("/api/v1/connections/db", headers=api)
    seen = [(a, action, target, d["source"]) for a, action, target, d in recorder.actions]
    assert seen == [("root", "user.login_failed", "root", "ui"),
                    ("root", "user.login", "root", "ui"),
                    ("root", "variable.create", "region", "ui"),
                    ("root", "connection.create", "db", "api"),
                    ("root", "connection.delete", "db", "api")]
    assert CANARY not in repr(recorder.actions)
    events = client.get("/api/v1/eventLogs?actor=root", headers=api).json
    assert events["total_entries"] == 5
    assert events["event_logs"][0]["action"] == "connection.delete"
