"""The bench workloads run to success through a real ``flow scheduler`` with
``[core] executor = "kubernetes"``: every try is a pod on the test API server.

Each costs one ``flow tasks run`` interpreter per task (fanout-200: 202 of them), so each runs
once, in its own test. The wall time is printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flow.testing.environment import FlowEnvironment

WORKLOADS = Path(__file__).resolve().parents[3] / "bench" / "workloads"


def run_workload(flow_env: FlowEnvironment, environment: dict[str, str], filename: str,
                 dag_id: str, timeout: float) -> dict[str, str | None]:
    from flow.scheduling.actions import set_paused, trigger_dag_run
    from flow.scheduling.processor import DagProcessor
    from flow.store.models import DagRun, TaskInstance
    from flow.store.session import session_scope

    shutil.copy(WORKLOADS / filename, flow_env.dags_folder / filename)
    DagProcessor(flow_env.dags_folder).process(force=True)
    set_paused(dag_id, False, actor="test", source="cli")
    run = trigger_dag_run(dag_id, actor="test", source="cli")
    log_path = flow_env.home / "scheduler.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.run(
            [str(Path(sys.executable).with_name("flow")), "scheduler", "--once"],
            env={**os.environ, **environment, "FLOW__CORE__EXECUTOR": "kubernetes"},
            stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, log_path.read_text()[-3000:]
    with session_scope(flow_env.engine) as session:
        run_state = session.scalar(select(DagRun.state).where(DagRun.run_id == run.run_id))
        states = dict(session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.run_id == run.run_id)).all())
    print(f"\n{dag_id}: {len(states)} tasks, one pod each, in {elapsed:.1f} s")
    assert run_state == "success", (run_state, log_path.read_text()[-3000:])
    return states


@pytest.mark.timeout(300)
def test_chain_50_succeeds_with_a_pod_per_task(
        flow_env: FlowEnvironment, flow_plugins: Any, kube_cluster: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    states = run_workload(flow_env, k8s_environment(), "chain_50.py", "bench_chain_50", 280)
    assert len(states) == 50 and set(states.values()) == {"success"}


@pytest.mark.timeout(300)
def test_fanout_200_succeeds_with_a_pod_per_task(
        flow_env: FlowEnvironment, flow_plugins: Any, kube_cluster: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    states = run_workload(flow_env, k8s_environment(), "fanout_200.py", "bench_fanout_200", 280)
    assert len(states) == 202 and set(states.values()) == {"success"}


RESTART_DAG = """
import time
from datetime import datetime
from pathlib import Path
from flow import DAG
from flow.operators import PythonOperator

MARKS = Path({marks!r})

def steady():
    with open(MARKS / "started", "a") as handle:
        handle.write("started\\n")
    time.sleep(8)

with DAG("k8s_scheduler_restart", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="steady", python_callable=steady)
"""


@pytest.mark.timeout(180)
def test_a_restarted_scheduler_adopts_the_running_pod_and_deletes_orphans(
        flow_env: FlowEnvironment, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any],
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    from k8s_testing import wait_for

    from flow.execution.workload import TaskWorkload
    from flow.scheduling.actions import set_paused, trigger_dag_run
    from flow.scheduling.processor import DagProcessor
    from flow.store.models import DagRun, TaskInstance
    from flow.store.session import session_scope
    from flow_k8s import pod as pods_
    from flow_k8s.client import Pods, api_client

    marks = flow_env.home / "marks"
    marks.mkdir()
    (flow_env.dags_folder / "restart.py").write_text(RESTART_DAG.format(marks=str(marks)))
    DagProcessor(flow_env.dags_folder).process(force=True)
    set_paused("k8s_scheduler_restart", False, actor="test", source="cli")
    run = trigger_dag_run("k8s_scheduler_restart", actor="test", source="cli")
    environment = {**os.environ, **k8s_environment(), "FLOW__CORE__EXECUTOR": "kubernetes",
                   "FLOW__SCHEDULER__HEARTBEAT_INTERVAL": "0.5",
                   "FLOW__SCHEDULER__HEALTH_THRESHOLD": "2"}
    flow = str(Path(sys.executable).with_name("flow"))
    log_path = flow_env.home / "scheduler.log"
    with log_path.open("w") as log:
        first = subprocess.Popen([flow, "scheduler"], env=environment, stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (marks / "started").exists(), 60, "the task started in its pod")
        finally:
            first.kill()  # the scheduler dies without a word; its pod runs on
            first.wait()
    # An orphan from an older scheduler: a pod for a try that is not queued or running.
    orphan = pods_.worker_pod(TaskWorkload(dag_id="k8s_scheduler_restart", run_id="gone",
                                           task_id="steady", try_number=1,
                                           dag_file="restart.py"),
                              make_settings(), "a-dead-scheduler")
    pods_.worker_container(orphan)["command"] = ["sleep", "60"]
    pods = Pods(api_client(make_settings()), "default")
    try:
        pods.create(orphan)
        with log_path.open("a") as log:
            second = subprocess.run([flow, "scheduler", "--once"], env=environment, stdout=log,
                                    stderr=subprocess.STDOUT, timeout=120, check=False)
        assert second.returncode == 0, log_path.read_text()[-3000:]
        assert pods.read(orphan["metadata"]["name"]) is None, "the orphan was not deleted"
    finally:
        pods.client.close()
    with session_scope(flow_env.engine) as session:
        run_state = session.scalar(select(DagRun.state).where(DagRun.run_id == run.run_id))
        ti = session.execute(select(TaskInstance.state, TaskInstance.try_number).where(
            TaskInstance.run_id == run.run_id)).one()
    assert run_state == "success", log_path.read_text()[-3000:]
    assert tuple(ti) == ("success", 1), "the try was not adopted but run again"
    assert (marks / "started").read_text().split() == ["started"]
