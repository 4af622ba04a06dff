"""The REST API: its OpenAPI document, paging and filtering, logs, and fuzzing against it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .conftest import DAG_ID


def _get(app: Flask, token: str, path: str) -> Any:
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, (path, response.get_data(as_text=True))
    return response.json


def test_the_openapi_document_is_valid_and_lists_every_api_route(
        app: Flask, users: dict[str, str]) -> None:
    from openapi_spec_validator import validate

    document = _get(app, users["viewer"], "/api/v1/openapi.json")
    validate(document)
    assert document["openapi"].startswith("3.1")
    routes = {(rule.rule.replace("<int:", "<"), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path.replace("{", "<").replace("}", ">"), method)
                  for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_lists_are_paged_with_a_total(app: Flask, users: dict[str, str]) -> None:
    token = {"Authorization": f"Bearer {users['op']}"}
    client = app.test_client()
    for n in range(7):
        client.post("/api/v1/pools", json={"name": f"pool_{n}", "slots": n}, headers=token)
    page = _get(app, users["viewer"], "/api/v1/pools?limit=3&offset=2")
    assert page["total_entries"] == 7
    assert [p["name"] for p in page["pools"]] == ["pool_2", "pool_3", "pool_4"]
    assert _get(app, users["viewer"], "/api/v1/pools?name_pattern=_6")["total_entries"] == 1


def test_dags_filter_by_tag_owner_name_and_pause(app: Flask, users: dict[str, str],
                                                 parsed: str) -> None:
    viewer = users["viewer"]
    assert [d["dag_id"] for d in _get(app, viewer, "/api/v1/dags?tags=demo")["dags"]] == [DAG_ID]
    assert _get(app, viewer, "/api/v1/dags?tags=nothere")["total_entries"] == 0
    assert _get(app, viewer, "/api/v1/dags?dag_id_pattern=web_")["total_entries"] == 1
    assert _get(app, viewer, "/api/v1/dags?paused=false")["total_entries"] == 0
    dag = _get(app, viewer, f"/api/v1/dags/{DAG_ID}")
    assert {t["task_id"] for t in dag["tasks"]} >= {"extract", "double", "load.first"}
    assert dag["params"]["count"]["default"] == 3


def test_runs_task_instances_xcoms_and_logs_of_a_real_run(app: Flask, users: dict[str, str],
                                                          demo_run: Any) -> None:
    viewer = users["viewer"]
    base = f"/api/v1/dags/{DAG_ID}/dagRuns"
    runs = _get(app, viewer, base)
    assert runs["total_entries"] == 1 and runs["dag_runs"][0]["state"] == "success"
    run = f"{base}/{demo_run.run_id}"
    tis = _get(app, viewer, f"{run}/taskInstances?task_id=double")
    assert tis["total_entries"] == 3  # mapped over [1, 2, 3]
    xcoms = _get(app, viewer, f"{run}/taskInstances/extract/xcomEntries")
    assert xcoms["xcom_entries"][0]["value"] == [1, 2, 3]
    log = _get(app, viewer, f"{run}/taskInstances/extract/logs/1")
    assert "extracting 3 rows" in log["content"] and log["end_of_log"]
    rest = _get(app, viewer, f"{run}/taskInstances/extract/logs/1?token="
                             f"{log['continuation_token']}")
    assert rest["content"] == "" and rest["end_of_log"]
    bad = app.test_client().get(f"{run}/taskInstances/extract/logs/1?token=garbage",
                                headers={"Authorization": f"Bearer {viewer}"})
    assert bad.status_code == 400 and "continuation token" in bad.json["detail"]


def test_the_health_check_reports_the_database_and_the_scheduler(app: Flask) -> None:
    from flow.store.models import Job
    from flow.store.session import session_scope
    from flow.utils.timezone import utcnow

    assert app.test_client().get("/health").json["scheduler"]["status"] == "unknown"
    with session_scope() as session:
        session.add(Job(job_type="scheduler", state="running", latest_heartbeat=utcnow()))
    health = app.test_client().get("/health").json
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"
    assert health["scheduler"]["heartbeat_age_seconds"] < 60


def test_connection_passwords_are_write_only(app: Flask, users: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {users['admin']}"}
    client = app.test_client()
    client.post("/api/v1/connections", headers=admin, json={
        "conn_id": "db", "conn_type": "postgres", "password": "s3cret-value"})
    client.patch("/api/v1/connections/db", headers=admin, json={"host": "db.example"})
    shown = client.get("/api/v1/connections/db", headers=admin).json
    assert shown["has_password"] is True and "password" not in shown
    from flow.secrets.database import load_connection

    stored = load_connection("db")
    assert stored is not None and stored.password == "s3cret-value"


def test_sensitive_variables_are_masked(app: Flask, users: dict[str, str]) -> None:
    op = {"Authorization": f"Bearer {users['op']}"}
    client = app.test_client()
    client.post("/api/v1/variables", headers=op, json={"key": "api_secret", "value": "xyz123"})
    client.post("/api/v1/variables", headers=op, json={"key": "region", "value": "eu"})
    values = {v["key"]: v["value"] for v in
              client.get("/api/v1/variables", headers=op).json["variables"]}
    assert values == {"api_secret": "***", "region": "eu"}


def test_the_api_fuzzed_against_its_own_document_never_fails(
        app: Flask, users: dict[str, str], demo_run: Any) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    headers = {"Authorization": f"Bearer {users['admin']}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)
    selected = [checks.not_a_server_error, checks.status_code_conformance,
                checks.content_type_conformance, checks.response_schema_conformance]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=20, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=selected)

        try:
            run()
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                raise
            failures.append(f"{operation.method.upper()} {operation.path}: {err}"[:1500])
    assert not failures, "\n\n".join(failures)


def test_a_running_tries_log_is_streamed_piece_by_piece(app: Flask, users: dict[str, str],
                                                        demo_run: Any) -> None:
    from sqlalchemy import update

    from flow.config import load_config
    from flow.execution.logs import log_path
    from flow.store.models import TaskInstance
    from flow.store.session import session_scope

    with session_scope() as session:
        session.execute(update(TaskInstance).where(TaskInstance.task_id == "extract")
                        .values(state="running", try_number=2))
    path = log_path(load_config().get("logging", "base_log_folder"), DAG_ID,
                    demo_run.run_id, "extract", -1, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("first line\n")
    url = f"/api/v1/dags/{DAG_ID}/dagRuns/{demo_run.run_id}/taskInstances/extract/logs/2"
    first = _get(app, users["viewer"], url)
    assert first["content"] == "first line\n" and not first["end_of_log"]
    with path.open("a") as handle:
        handle.write("second line\n")
    second = _get(app, users["viewer"], f"{url}?token={first['continuation_token']}")
    assert second["content"] == "second line\n" and not second["end_of_log"]
    with session_scope() as session:
        session.execute(update(TaskInstance).where(TaskInstance.task_id == "extract")
                        .values(state="success"))
    last = _get(app, users["viewer"], f"{url}?token={second['continuation_token']}")
    assert last["content"] == "" and last["end_of_log"]
