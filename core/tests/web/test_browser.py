"""End to end in headless Chromium: what a person does in the UI, with screenshots.

Needs the Debian packages chromium (and chromium-driver, for Selenium users) and the Python
package playwright. The server is flow's own (``flow.web.server``'s WSGI server) on a free port;
the triggered run is executed by ``flow scheduler`` with the configured executor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DAG_ID, PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def scheduler(db_url: str, flow_home: Path) -> Iterator[None]:
    """``flow scheduler`` running against the test database, stopped at the end."""
    log = (flow_home / "scheduler.out").open("w")
    process = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "scheduler"],
                               env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    yield
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_person_operates_a_dag_from_the_browser(
        server: str, browser: Any, users: dict[str, str], demo_run: Any, tmp_path: Path,
        scheduler: None) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Log in; the login page is where an anonymous visitor lands.
    page.goto(f"{server}/dags")
    assert "/login" in page.url
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{server}/dags")
    assert page.locator(f"text={DAG_ID}").count() >= 1
    shot("dags")

    # The grid of the finished run is green; the graph and Gantt render.
    page.goto(f"{server}/dags/{DAG_ID}")
    page.wait_for_selector("#grid table")
    assert page.locator('#grid th .cell.s-success').count() == 1
    shot("grid")
    for tab in ("graph", "gantt", "code", "details", "runs"):
        page.goto(f"{server}/dags/{DAG_ID}/{tab}")
        shot(tab)

    # A task's log streams in, and markup in it is text.
    page.goto(f"{server}/dags/{DAG_ID}/runs/{demo_run.run_id}/tasks/extract")
    page.wait_for_selector("pre.log[data-complete=true]")
    log_text = page.inner_text("pre.log")
    assert "extracting 3 rows" in log_text
    assert "<script>window.__xss = 1</script> is plain text" in log_text
    assert page.evaluate("window.__xss") is None
    shot("task_instance")

    # Add a connection through the form; its password is never sent back.
    page.goto(f"{server}/connections")
    page.click("#add-connection")
    page.fill("#f-conn_id", "warehouse")
    page.fill("#f-conn_type", "postgres")
    page.fill("#f-host", "db.example")
    page.fill("#f-password", "browser-canary-pw")
    page.click("#save-connection")
    page.wait_for_url(f"{server}/connections")
    assert page.locator("td:text-is('warehouse')").count() == 1
    assert "browser-canary-pw" not in page.content()
    shot("connections")
    for name in ("variables", "pools", "plugins", "events"):
        page.goto(f"{server}/{name}")
        shot(name)

    # Unpause, then trigger through the Params form: a bad value is reported by the field.
    page.goto(f"{server}/dags/{DAG_ID}")
    page.click("#pause-toggle")
    page.wait_for_selector("text=Pause")
    page.click("#trigger")
    page.fill("input[name='param.count']", "0")
    page.click("#trigger-submit")
    assert "count" in page.inner_text(".field-error")
    shot("trigger_error")
    page.fill("input[name='param.count']", "2")
    page.click("#trigger-submit")
    page.wait_for_url(f"{server}/dags/{DAG_ID}")

    # The grid refreshes by itself until the new run is green.
    # (Polled from here: the page's CSP forbids the string eval of wait_for_function.)
    deadline = time.monotonic() + 90
    while page.locator("#grid th .cell.s-success").count() < 2:
        assert time.monotonic() < deadline, "the triggered run did not succeed in 90 s"
        page.wait_for_timeout(500)
    shot("grid_after_trigger")

    # Clear a task of the first run; the scheduler runs it again.
    page.goto(f"{server}/dags/{DAG_ID}/runs/{demo_run.run_id}/tasks/extract")
    page.click("#clear")
    page.wait_for_selector("text=Cleared the task instance.")

    page.click("#logout")
    page.wait_for_url(f"{server}/login")
    page.goto(f"{server}/dags")
    assert "/login" in page.url
    print(f"screenshots in {shots}")
