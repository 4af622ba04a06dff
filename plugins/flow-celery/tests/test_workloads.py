"""The bench workloads run to success through a real ``flow scheduler`` with the celery
executor and two ``flow celery worker`` processes of concurrency 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Deployment

WORKLOADS = Path(__file__).resolve().parents[3] / "bench" / "workloads"


@pytest.mark.parametrize(("filename", "dag_id", "tasks"), [
    ("fanout_200.py", "bench_fanout_200", 202),
    ("chain_50.py", "bench_chain_50", 50),
])
def test_bench_workload_succeeds_on_two_workers(deployment: Deployment, filename: str,
                                                dag_id: str, tasks: int) -> None:
    deployment.add_dag_file(WORKLOADS / filename, dag_id)
    deployment.workers.start(2, concurrency=2)
    deployment.start_scheduler()
    run_id = deployment.trigger(dag_id)
    assert deployment.wait_run(dag_id, run_id, timeout=240) == "success"
    states = deployment.states(dag_id)
    assert len(states) == tasks
    assert set(states.values()) == {("success", 1)}
