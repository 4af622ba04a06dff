"""Messages delivered twice, lost by the broker, or held up by a broker outage; and a
scheduler restart in the middle of long tries."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BrokerProxy, Deployment, session_members

from flow.execution.workload import TaskEvent

BROKER_PARAMS = [pytest.param("redis", id="redis"), pytest.param("rabbitmq", id="rabbitmq")]
FINAL = {"success", "failed", "up_for_retry", "skipped", "refused", "lost"}


def _final_events(executor: Any, timeout: float) -> list[TaskEvent]:
    events: list[TaskEvent] = []
    deadline = time.monotonic() + timeout
    while not any(e.state in FINAL for e in events) and time.monotonic() < deadline:
        executor.wait_for_events(0.2)
        events += executor.events()
    return [e for e in events if e.state in FINAL]


@pytest.mark.parametrize("celery_env", BROKER_PARAMS, indirect=True)
def test_same_workload_published_twice_runs_once(deployment: Deployment) -> None:
    from flow.scheduling.dagbag import load_dag_file
    from flow.testing.runner import create_dag_run, queue_task
    from flow_celery.executor import CeleryExecutor

    deployment.add_dag("published_twice", """
def once(ti):
    ledger(ti)
    time.sleep(1)

with dag("published_twice"):
    PythonOperator(task_id="once", python_callable=once)
""")
    [dag] = load_dag_file(deployment.home / "dags" / "published_twice.py").dags
    deployment.workers.start(2, concurrency=1)
    run_id = create_dag_run(dag, deployment.engine)
    workload = queue_task(dag, "once", run_id, deployment.engine)
    # Two schedulers (or a publish retried after a lost confirmation) send the same try.
    first, second = CeleryExecutor(parallelism=2), CeleryExecutor(parallelism=2)
    try:
        for executor in (first, second):
            executor.start()
            executor.submit(workload)
        outcomes = [_final_events(executor, 60) for executor in (first, second)]
    finally:
        first.shutdown(wait=False)
        second.shutdown(wait=False)
    assert [[(e.state, e.try_number) for e in events] for events in outcomes] == [
        [("success", 1)], [("success", 1)]]
    time.sleep(2)  # the second delivery has been refused by now
    assert [(task, number) for task, number, _, _ in deployment.ledger()] == [("once", 1)]
    assert deployment.states("published_twice") == {"once": ("success", 1)}


def test_try_lost_by_the_broker_is_failed_after_the_queued_timeout(
        deployment: Deployment) -> None:
    from flow_celery.app import make_app

    deployment.add_dag("lost_message", """
with dag("lost_message"):
    PythonOperator(task_id="never", python_callable=ledger)
""")
    deployment.start_scheduler(FLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="4")
    run_id = deployment.trigger("lost_message")
    deployment.wait_for(lambda: deployment.states("lost_message")["never"][0] == "queued", 30,
                        "the try queued")
    app = make_app()
    try:
        # No worker listens: the message waits in the queue, and the broker "loses" it.
        deployment.wait_for(lambda: _purge(app, deployment.queue()) > 0, 30,
                            "the message on the broker")
    finally:
        app.close()
    assert deployment.wait_run("lost_message", run_id, timeout=60) == "failed"
    assert deployment.states("lost_message") == {"never": ("failed", 1)}
    log = next((deployment.home / "logs").rglob("attempt=1.log")).read_text()
    assert "task_queued_timeout" in log
    assert deployment.ledger() == []


def _purge(app: Any, queue: str) -> int:
    with app.connection_for_write() as connection:
        try:
            return int(connection.default_channel.queue_purge(queue) or 0)
        except Exception:  # not declared yet
            return 0


def test_scheduler_killed_during_long_tries_has_them_adopted_not_rerun(
        deployment: Deployment) -> None:
    deployment.add_dag("adopted", """
def long(ti):
    ledger(ti)
    time.sleep(10)

with dag("adopted"):
    for index in range(8):
        PythonOperator(task_id=f"long_{index}", python_callable=long)
""")
    deployment.workers.start(2, concurrency=4)
    fast_failover = {"FLOW__SCHEDULER__HEALTH_THRESHOLD": "3",
                     "FLOW__SCHEDULER__HEARTBEAT_INTERVAL": "1"}
    scheduler = deployment.start_scheduler(**fast_failover)
    run_id = deployment.trigger("adopted")
    deployment.wait_for(lambda: len(deployment.ledger()) == 8, 60, "eight tries running")
    for pid in session_members(scheduler.pid):
        os.kill(pid, 9)
    scheduler.wait(timeout=10)
    deployment.start_scheduler(**fast_failover)
    assert deployment.wait_run("adopted", run_id, timeout=90) == "success"
    assert set(deployment.states("adopted").values()) == {("success", 1)}
    assert len(deployment.ledger()) == 8, deployment.ledger()
    assert "adopted 8 of 8 tries from Celery" in deployment.scheduler_log()


@pytest.fixture
def proxy(request: pytest.FixtureRequest, celery_env: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[BrokerProxy]:
    """The test's broker behind a proxy that can cut it off; ``[celery] broker_url`` points
    at the proxy."""
    through = BrokerProxy(celery_env["FLOW__CELERY__BROKER_URL"])
    monkeypatch.setenv("FLOW__CELERY__BROKER_URL", through.proxied_url())
    try:
        yield through
    finally:
        through.close()


@pytest.mark.parametrize("celery_env", BROKER_PARAMS, indirect=True)
def test_broker_outage_of_30_seconds_loses_nothing_and_work_resumes(
        deployment: Deployment, proxy: BrokerProxy) -> None:
    from sqlalchemy import text

    deployment.add_dag("outage", """
def step(ti):
    ledger(ti)
    time.sleep(1)

with dag("outage"):
    previous = None
    for index in range(8):
        task = PythonOperator(task_id=f"step_{index}", python_callable=step)
        if previous is not None:
            previous >> task
        previous = task
""")
    deployment.workers.start(2, concurrency=2, env={"FLOW__CELERY__VISIBILITY_TIMEOUT": "20"})
    deployment.start_scheduler()
    run_id = deployment.trigger("outage")
    deployment.wait_for(lambda: len(deployment.ledger()) >= 3, 60, "three steps run")
    proxy.cut()
    time.sleep(30)
    with deployment.engine.connect() as connection:
        back = connection.execute(text("SELECT now()")).scalar_one()
    proxy.restore()
    assert deployment.wait_run("outage", run_id, timeout=120) == "success"
    assert set(deployment.states("outage").values()) == {("success", 1)}
    runs = collections.Counter(task for task, _, _, _ in deployment.ledger())
    assert runs == {f"step_{index}": 1 for index in range(8)}
    with deployment.engine.connect() as connection:
        first_after = connection.execute(text(
            "SELECT min(at) FROM celery_test_ledger WHERE at > :back"), {"back": back}
        ).scalar_one()
    assert first_after is not None, "no step ran after the broker came back"
    assert (first_after - back).total_seconds() <= 30
