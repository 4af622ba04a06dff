"""The pages render what flow wrote, escaped; the API answers in JSON."""

from __future__ import annotations

from typing import Any

from .conftest import DAG_ID


def test_every_main_page_renders_for_a_viewer(browser_as: Any, demo_run: Any) -> None:
    client, _ = browser_as("viewer")
    run_id = demo_run.run_id
    for path in ("/dags", f"/dags/{DAG_ID}", f"/dags/{DAG_ID}/graph", f"/dags/{DAG_ID}/gantt",
                 f"/dags/{DAG_ID}/code", f"/dags/{DAG_ID}/details", f"/dags/{DAG_ID}/runs",
                 f"/dags/{DAG_ID}/runs/{run_id}/tasks/extract", "/connections", "/variables",
                 "/pools", "/plugins", "/events"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:2000])


def test_the_grid_shows_the_latest_25_runs_whatever_is_stored(browser_as: Any,
                                                              demo_run: Any) -> None:
    from datetime import timedelta

    from flow.store.models import DagRun, TaskInstance
    from flow.store.session import session_scope
    from flow.utils.timezone import utcnow

    with session_scope() as session:
        for n in range(40):
            session.add(DagRun(dag_id=DAG_ID, run_id=f"old_{n:02d}", run_type="scheduled",
                               state="failed", logical_date=utcnow() - timedelta(days=n + 1)))
        session.flush()
        session.add(TaskInstance(dag_id=DAG_ID, run_id="old_39", task_id="extract",
                                 state="failed"))
    client, _ = browser_as("viewer")
    grid = client.get(f"/dags/{DAG_ID}/grid.json").json
    assert len(grid["runs"]) == 25
    assert grid["runs"][-1]["run_id"] == "old_39"  # the newest run is on the right
    rows = {row["id"]: row for row in grid["rows"]}
    assert len(rows["extract"]["states"]) == 25 and rows["extract"]["states"][-1] == "F"
    assert rows["load"]["group"] and rows["load.first"]["parent"] == "load"
    assert rows["double"]["mapped"]


def test_the_trigger_form_is_built_from_the_params(browser_as: Any, parsed: str) -> None:
    client, _ = browser_as("op")
    html = client.get(f"/dags/{DAG_ID}/trigger").get_data(as_text=True)
    assert 'name="param.count"' in html and 'value="3"' in html
    assert 'name="param.label"' in html and 'value="hello"' in html


def test_a_bad_param_value_is_reported_next_to_its_field(browser_as: Any, parsed: str) -> None:
    client, token = browser_as("op")
    response = client.post(f"/dags/{DAG_ID}/trigger", data={
        "csrf_token": token, "param.count": "0", "param.label": "x"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "field-error" in html and "minimum" in html
    response = client.post(f"/dags/{DAG_ID}/trigger", data={
        "csrf_token": token, "param.count": "many", "param.label": "x"})
    assert "&#39;many&#39; is not a valid integer" in response.get_data(as_text=True)
