"""Workers that die: killed from outside with their tries, or by a try of their own."""

from __future__ import annotations

import collections
import time

import pytest
from conftest import Deployment, queue_length

BROKER_PARAMS = [pytest.param("redis", id="redis"), pytest.param("rabbitmq", id="rabbitmq")]


@pytest.mark.parametrize("celery_env", BROKER_PARAMS, indirect=True)
def test_killed_worker_session_loses_no_task_and_reruns_each_killed_try_once(
        deployment: Deployment) -> None:
    deployment.add_dag("killed_worker", """
def steady(ti):
    ledger(ti)
    time.sleep(4)

with dag("killed_worker"):
    for index in range(6):
        PythonOperator(task_id=f"steady_{index}", python_callable=steady, retries=1,
                       retry_delay=timedelta(0))
""")
    # Redis hands a dead worker's unacknowledged messages out again after this long.
    first, _ = deployment.workers.start(2, concurrency=2, env={
        "FLOW__CELERY__VISIBILITY_TIMEOUT": "8"})
    deployment.start_scheduler()
    run_id = deployment.trigger("killed_worker")
    deployment.wait_for(lambda: len(deployment.ledger()) >= 4, 60, "four tries running")
    victims = {task_id for task_id, _, _, sid in deployment.ledger() if sid == first.pid}
    assert victims, "the first worker ran none of the tries"
    deployment.workers.kill_session(first)

    assert deployment.wait_run("killed_worker", run_id, timeout=120) == "success"
    states = deployment.states("killed_worker")
    assert {state for state, _ in states.values()} == {"success"}
    runs = collections.Counter(task_id for task_id, _, _, _ in deployment.ledger())
    for task_id, count in runs.items():
        expected = 2 if task_id in victims else 1
        assert count == expected, f"{task_id} ran {count} times: {deployment.ledger()}"
        assert states[task_id] == ("success", expected)
    assert len(runs) == 6
    deployment.wait_for(lambda: queue_length(deployment.broker, deployment.queue()) == 0, 45,
                        "the queue empty (the killed worker's messages delivered and refused)")


def test_task_that_kills_its_worker_runs_three_times_then_fails_naming_the_loss(
        deployment: Deployment) -> None:
    deployment.add_dag("worker_killer", """
def kill_my_worker(ti):
    ledger(ti)
    os.kill(os.getppid(), signal.SIGKILL)  # the Celery pool process supervising this try
    os._exit(9)

with dag("worker_killer"):
    PythonOperator(task_id="killer", python_callable=kill_my_worker, retries=2,
                   retry_delay=timedelta(0))
""")
    deployment.workers.start(1, concurrency=2)
    deployment.start_scheduler()
    run_id = deployment.trigger("worker_killer")
    assert deployment.wait_run("worker_killer", run_id, timeout=120) == "failed"
    assert deployment.states("worker_killer") == {"killer": ("failed", 3)}
    time.sleep(3)  # a redelivery would run by now
    assert [(task, number) for task, number, _, _ in deployment.ledger()] == [
        ("killer", 1), ("killer", 2), ("killer", 3)]
    last_log = next((deployment.home / "logs").rglob("attempt=3.log")).read_text()
    assert "WorkerLostError" in last_log and "worker process running try 3 was lost" in last_log
    assert "WorkerLostError" in deployment.try_error("worker_killer", "killer", 3)
    assert queue_length(deployment.broker, deployment.queue()) == 0
