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
