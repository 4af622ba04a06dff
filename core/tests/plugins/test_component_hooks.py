"""``flow_component_started`` / ``flow_component_stopped`` in real processes: a plugin installed
like any other hears each long-lived component start before it does any work and stop after its
last state change (a real ``flow scheduler`` with the local executor, a real ``flow webserver``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from scheduler.helpers import wait_for

LISTENER = """
    import json, os, time
    from flow import hookimpl

    def _note(**fields):
        with open(os.path.join(os.environ["FLOW_HOME"], "component_events"), "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\\n")

    @hookimpl
    def flow_component_started(component):
        _note(event="started", component=component)

    @hookimpl
    def flow_component_stopped(component):
        _note(event="stopped", component=component)

    @hookimpl
    def flow_task_instance_state_changed(ti, previous, current):
        _note(event="ti", task_id=ti.task_id, current=current)
"""

DAG = """
from datetime import datetime

from flow import DAG
from flow.operators import PythonOperator

with DAG("components", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="a", python_callable=lambda: 1) >> PythonOperator(
        task_id="b", python_callable=lambda: 2)
"""


def _events(flow_home: Path) -> list[dict[str, Any]]:
    path = flow_home / "component_events"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.update({"FLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
                "FLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "1",
                "FLOW__SCHEDULER__IDLE_SLEEP": "0.2",
                "FLOW__LOCAL_EXECUTOR__WORKERS": "1"})
    return env


def test_the_scheduler_and_its_worker_each_announce_start_before_work_and_stop_after_it(
        fake_distribution: Any, flow_home: Path, sqlite_db: str) -> None:
    from flow.scheduling.actions import trigger_dag_run

    site = fake_distribution(LISTENER, name="flow-lifecycle").site
    (flow_home / "dags" / "components.py").write_text(DAG)
    log = flow_home / "scheduler.out"
    with log.open("w") as out:
        scheduler = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "scheduler"],
                                     env=_env(site), stdout=out, stderr=subprocess.STDOUT)
    try:
        started = lambda: [e for e in _events(flow_home) if e["event"] == "started"]  # noqa: E731
        wait_for(lambda: len(started()) == 2, 60, "the scheduler and its worker to start",
                 log.read_text)
        wait_for(_dag_parsed, 60, "the DAG to be parsed", log.read_text)
        trigger_dag_run("components", actor="test", source="cli")
        wait_for(lambda: [e for e in _events(flow_home)
                          if e["event"] == "ti" and e["task_id"] == "b"
                          and e["current"] == "success"], 60, "task b to succeed", log.read_text)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=60)
    assert scheduler.returncode == 0, log.read_text()

    events = _events(flow_home)
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_pid.setdefault(event["pid"], []).append(event)
    components = {pid: (own[0]["component"] if own[0]["event"] == "started" else None)
                  for pid, own in by_pid.items()}
    assert components[scheduler.pid] == "scheduler", events
    [worker] = [pid for pid, name in components.items() if name == "local_worker"]
    # Each announces its start first and its stop last, once; the state changes it commits lie
    # between: the scheduler queues the tries, the worker starts and ends them.
    for pid, component, changes in ((scheduler.pid, "scheduler", {"scheduled", "queued"}),
                                    (worker, "local_worker", {"running", "success"})):
        own = by_pid[pid]
        assert own[0] == {**own[0], "event": "started", "component": component}, own
        assert own[-1] == {**own[-1], "event": "stopped", "component": component}, own
        middle = own[1:-1]
        assert {e["event"] for e in middle} == {"ti"}, own
        assert {e["current"] for e in middle} == changes, own
    # Tries run in children forked by the worker after it started: none announces anything.
    assert set(by_pid) == {scheduler.pid, worker}, events


def _dag_parsed() -> bool:
    from sqlalchemy import select

    from flow.store.models import DagModel
    from flow.store.session import get_engine, session_scope

    with session_scope(get_engine()) as session:
        return session.scalar(select(DagModel.dag_id).where(
            DagModel.dag_id == "components")) is not None


def test_the_web_server_announces_start_once_serving_and_stop_at_ctrl_c(
        fake_distribution: Any, flow_home: Path, sqlite_db: str) -> None:
    site = fake_distribution(LISTENER, name="flow-lifecycle").site
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = flow_home / "webserver.out"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "webserver",
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  env=_env(site), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _events(flow_home), 60, "the web server to start", log.read_text)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it serves once it said it started
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

    events = [(e["pid"], e["event"], e["component"]) for e in _events(flow_home)]
    assert events == [(server.pid, "started", "webserver"),
                      (server.pid, "stopped", "webserver")], log.read_text()
