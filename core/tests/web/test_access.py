"""Who may call what: a table of every route by method with the least role it needs.

The test walks ``app.url_map``: a route missing from :data:`RULES` fails it, so a new route
cannot ship without a decision about who may use it. For each rule it checks that an anonymous
request is refused (401 for the API, a redirect to the login page for pages), that the role
just below the one needed gets 403, and that the role needed gets through.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from .conftest import DAG_ID

PUBLIC = "public"
V, OP, A = "viewer", "op", "admin"
ROLES = (V, OP, A)

# endpoint -> {method: least role}
RULES: dict[str, dict[str, str]] = {
    "static": {"GET": PUBLIC},
    "ui.login": {"GET": PUBLIC, "POST": PUBLIC},
    "ui.health": {"GET": PUBLIC},
    "api.health": {"GET": PUBLIC},
    "ui.logout": {"POST": V},
    "ui.index": {"GET": V},
    "ui.dag_list": {"GET": V},
    "ui.dag_grid": {"GET": V},
    "ui.dag_grid_data": {"GET": V},
    "ui.dag_graph": {"GET": V},
    "ui.dag_gantt": {"GET": V},
    "ui.dag_code": {"GET": V},
    "ui.dag_details": {"GET": V},
    "ui.dag_runs": {"GET": V},
    "ui.dag_runs_data": {"GET": V},
    "ui.dag_pause": {"POST": OP},
    "ui.dag_trigger": {"GET": OP, "POST": OP},
    "ui.task_instance": {"GET": V},
    "ui.task_clear": {"POST": OP},
    "ui.task_mark": {"POST": OP},
    "ui.connection_list": {"GET": V},
    "ui.connection_new": {"GET": A, "POST": A},
    "ui.connection_edit": {"GET": A, "POST": A},
    "ui.connection_delete": {"POST": A},
    "ui.connection_test": {"POST": A},
    "ui.variable_list": {"GET": V},
    "ui.variable_new": {"GET": OP, "POST": OP},
    "ui.variable_edit": {"GET": OP, "POST": OP},
    "ui.variable_delete": {"POST": OP},
    "ui.pool_list": {"GET": V, "POST": OP},
    "ui.pool_delete": {"POST": OP},
    "ui.plugin_list": {"GET": V},
    "ui.event_log": {"GET": V},
    "ui.user_list": {"GET": A, "POST": A},
    "ui.user_delete": {"POST": A},
    "api.openapi_document": {"GET": V},
    "api.list_dags": {"GET": V},
    "api.get_dag": {"GET": V},
    "api.patch_dag": {"PATCH": OP},
    "api.get_dag_source": {"GET": V},
    "api.list_import_errors": {"GET": V},
    "api.list_dag_runs": {"GET": V},
    "api.trigger_dag_run": {"POST": OP},
    "api.get_dag_run": {"GET": V},
    "api.delete_dag_run": {"DELETE": OP},
    "api.clear_dag_run": {"POST": OP},
    "api.list_task_instances": {"GET": V},
    "api.get_task_instance": {"GET": V},
    "api.set_task_instance_state": {"PATCH": OP},
    "api.clear_task_instances": {"POST": OP},
    "api.list_tries": {"GET": V},
    "api.get_log": {"GET": V},
    "api.list_xcoms": {"GET": V},
    "api.list_connections": {"GET": V},
    "api.create_connection": {"POST": A},
    "api.get_connection": {"GET": V},
    "api.patch_connection": {"PATCH": A},
    "api.delete_connection": {"DELETE": A},
    "api.test_connection": {"POST": A},
    "api.list_variables": {"GET": V},
    "api.create_variable": {"POST": OP},
    "api.get_variable": {"GET": V},
    "api.patch_variable": {"PATCH": OP},
    "api.delete_variable": {"DELETE": OP},
    "api.list_pools": {"GET": V},
    "api.create_pool": {"POST": OP},
    "api.get_pool": {"GET": V},
    "api.patch_pool": {"PATCH": OP},
    "api.delete_pool": {"DELETE": OP},
    "api.list_plugins": {"GET": V},
    "api.list_event_logs": {"GET": V},
    "api.list_users": {"GET": A},
    "api.create_user": {"POST": A},
    "api.delete_user": {"DELETE": A},
}

# Bodies that make each write valid, so "the role needed gets through" means it really ran.
BODIES: dict[str, Any] = {
    "api.patch_dag": {"is_paused": False},
    "api.trigger_dag_run": {"conf": {"count": 2}},
    "api.clear_dag_run": {"dry_run": True},
    "api.set_task_instance_state": {"state": "success"},
    "api.clear_task_instances": {"task_ids": ["extract"], "dry_run": True},
    "api.create_connection": {"conn_id": "new_conn", "conn_type": "http"},
    "api.patch_connection": {"host": "example.org"},
    "api.create_variable": {"key": "new_var", "value": "1"},
    "api.patch_variable": {"value": "2"},
    "api.create_pool": {"name": "new_pool", "slots": 2},
    "api.patch_pool": {"slots": 3},
    "api.create_user": {"username": "new_user", "password": "long enough pw", "role": "viewer"},
}
FORMS: dict[str, dict[str, str]] = {
    "ui.dag_pause": {"paused": "false"},
    "ui.dag_trigger": {"param.count": "2", "param.label": "x"},
    "ui.task_mark": {"state": "success"},
    "ui.connection_new": {"conn_id": "form_conn", "conn_type": "http"},
    "ui.connection_edit": {"conn_type": "http", "host": "h"},
    "ui.variable_new": {"key": "form_var", "val": "1"},
    "ui.variable_edit": {"val": "2"},
    "ui.pool_list": {"name": "form_pool", "slots": "4"},
    "ui.user_list": {"username": "form_user", "password": "long enough pw", "role": "viewer"},
}


def _url(rule: Any, run_id: str) -> str:
    values = {"dag_id": DAG_ID, "run_id": run_id, "task_id": "extract", "conn_id": "c1",
              "key": "v1", "name": "p1", "username": "target", "try_number": 1,
              "filename": "flow.css"}
    return rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]


def _order(item: tuple[Any, str]) -> tuple[int, str]:
    # Reads first, deletions last, logout at the very end: nothing a test needs is gone early.
    rule, method = item
    rank = {"GET": 0, "PATCH": 1, "POST": 1, "DELETE": 2}[method]
    if rule.endpoint in {"ui.logout"}:
        rank = 4
    elif rule.endpoint.endswith("delete") or rule.endpoint.endswith("_delete"):
        rank = 3
    return rank, rule.rule


def _flow_routes(app: Flask) -> list[Any]:
    """flow's own routes; installed plugins' pages are checked by the test after this one."""
    return [rule for rule in app.url_map.iter_rules()
            if rule.endpoint == "static" or rule.endpoint.startswith(("ui.", "api."))]


def test_every_route_has_an_access_rule(app: Flask) -> None:
    missing = [f"{rule.endpoint} {method}" for rule in _flow_routes(app)
               for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
               if method not in RULES.get(rule.endpoint, {})]
    assert not missing, f"routes without a rule in the access table: {missing}"


def _seed(app: Flask) -> None:
    from flow.secrets import database as secrets_db
    from flow.secrets.connection import Connection
    from flow.store.models import Pool
    from flow.store.session import session_scope
    from flow.web.users import create_user

    secrets_db.save_connection(Connection("c1", "http", host="example.com"))
    secrets_db.save_variable("v1", "value")
    with session_scope() as session:
        session.add(Pool(name="p1", slots=5))
        create_user(session, "target", "target password", "viewer")


def test_each_role_gets_exactly_what_the_table_grants(app: Flask, users: dict[str, str],
                                                      browser_as: Any, demo_run: Any) -> None:
    _seed(app)
    anonymous = app.test_client()
    sessions = {role: browser_as(role) for role in ROLES}
    routes = sorted(((rule, method) for rule in _flow_routes(app)
                     for method in rule.methods - {"HEAD", "OPTIONS"}), key=_order)
    failures = []
    for rule, method in routes:
        needed = RULES[rule.endpoint][method]
        url = _url(rule, demo_run.run_id)
        api = url.startswith("/api/")
        if needed == PUBLIC:
            continue
        response = anonymous.open(url, method=method, json=BODIES.get(rule.endpoint))
        expected_anonymous = 401 if api else 302
        if response.status_code != expected_anonymous or (
                not api and "/login" not in response.headers.get("Location", "")):
            failures.append(f"anonymous {method} {url}: {response.status_code}")
        for role in ROLES:
            allowed = ROLES.index(role) >= ROLES.index(needed)
            if api:
                response = app.test_client().open(
                    url, method=method, json=BODIES.get(rule.endpoint),
                    headers={"Authorization": f"Bearer {users[role]}"})
            else:
                client, token = sessions[role]
                response = client.open(url, method=method,
                                       data={**FORMS.get(rule.endpoint, {}), "csrf_token": token}
                                       if method != "GET" else None)
            status = response.status_code
            if allowed and (status in {401, 403} or status >= 500):
                failures.append(f"{role} {method} {url}: {status} but the {needed} role may "
                                f"({response.get_data(as_text=True)[:300]})")
            if not allowed and status != 403:
                failures.append(f"{role} {method} {url}: {status}, expected 403")
    assert not failures, "\n".join(failures)


def test_a_plugin_page_needs_a_login_even_without_a_declared_rule(db_url: str) -> None:
    from flask import Blueprint

    from flow.plugins import PluginManager
    from flow.web.app import create_app

    class Plugin:
        @staticmethod
        def flow_web(app: Flask) -> None:
            page = Blueprint("undeclared", __name__)
            page.add_url_rule("/undeclared", "index", lambda: "secret page",
                              methods=["GET", "POST"])
            app.register_blueprint(page)

    plugins = PluginManager().load()
    plugins.register(Plugin(), "undeclared_page")
    client = create_app(plugins=plugins).test_client()
    assert client.get("/undeclared").status_code == 302
    assert client.post("/undeclared").status_code == 302


@pytest.mark.parametrize("path", ["/health", "/api/v1/health", "/login"])
def test_health_and_login_need_no_login(app: Flask, path: str) -> None:
    assert app.test_client().get(path).status_code == 200
