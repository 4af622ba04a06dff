"""``flow celery status`` and ``health`` against real workers; settings that are wrong; what
the workers accept."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from conftest import BROKERS, Deployment, flow_command, used_queues


def flow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*flow_command(), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, check=False)


@pytest.mark.parametrize("celery_env", ["rabbitmq"], indirect=True)
def test_status_lists_workers_and_queues_and_never_shows_the_password(
        deployment: Deployment) -> None:
    from flow.scheduling.dagbag import load_dag_file
    from flow.testing.runner import create_dag_run, queue_task
    from flow_celery.executor import CeleryExecutor

    deployment.add_dag("watched", """
with dag("watched"):
    PythonOperator(task_id="busy", python_callable=lambda ti: (ledger(ti), time.sleep(30)))
""")
    used_queues(deployment.celery["FLOW__CELERY__QUEUE_PREFIX"]).add(deployment.queue("gpu"))
    [worker] = deployment.workers.start(1, concurrency=1, queues="default,gpu")
    name = deployment.workers.names[0]
    [dag] = load_dag_file(deployment.home / "dags" / "watched.py").dags
    run_id = create_dag_run(dag, deployment.engine)
    executor = CeleryExecutor(parallelism=1)
    executor.start()
    try:
        executor.submit(queue_task(dag, "busy", run_id, deployment.engine))
        deployment.wait_for(lambda: len(deployment.ledger()) == 1, 30, "the try running")
        result = flow("celery", "status", "--output", "json")
    finally:
        executor.shutdown(wait=False)
    assert result.returncode == 0, result.stderr
    import json

    rows = {row["worker"]: row for row in json.loads(result.stdout)}
    assert sorted(rows[name]["queues"]) == ["default", "gpu"]
    assert rows[name]["active"] == 1
    assert rows[name]["tries"] == [f"watched/{run_id}/busy try 1"]
    table = flow("celery", "status")
    assert "amqp://guest:***@127.0.0.1:5672//" in table.stdout
    for text in (table.stdout, table.stderr, result.stdout, deployment.workers.log(worker)):
        assert "guest:guest" not in text


def test_status_exits_non_zero_when_no_worker_answers(flow_home: Any) -> None:
    # A Redis database of its own: control messages are scoped to it, so the workers of
    # other tests do not answer.
    lonely = BROKERS["redis"].rsplit("/", 1)[0] + "/9"
    result = flow("celery", "status", "--timeout", "0.5",
                  env={"FLOW__CELERY__BROKER_URL": lonely})
    assert result.returncode == 1
    assert "no Celery worker answered" in result.stderr


def test_health_answers_for_a_live_worker_only(deployment: Deployment) -> None:
    deployment.workers.start(1, concurrency=1)
    alive = flow("celery", "health", "--hostname", deployment.workers.names[0])
    assert alive.returncode == 0, alive.stderr
    gone = flow("celery", "health", "--hostname", "nobody@nowhere", "--timeout", "0.5")
    assert gone.returncode == 1
    assert "nobody@nowhere did not answer" in gone.stderr


def test_broker_url_that_is_not_a_url_is_named_in_the_error(flow_home: Any) -> None:
    result = flow("celery", "status", env={"FLOW__CELERY__BROKER_URL": "127.0.0.1:6379"})
    assert result.returncode != 0
    assert "[celery] broker_url must be a URL" in result.stderr


def test_mask_url_hides_passwords_in_broker_and_backend_urls() -> None:
    from flow_celery.settings import mask_url

    assert mask_url("redis://:s3cret@redis.internal:6379/0") == "redis://:***@redis.internal:6379/0"
    assert mask_url("db+postgresql+psycopg://flow:pw@db/flow") == \
        "db+postgresql+psycopg://flow:***@db/flow"
    assert mask_url("amqp://guest@rabbit//") == "amqp://guest@rabbit//"


def test_worker_refuses_a_pickled_message_and_runs_nothing(deployment: Deployment) -> None:
    from flow_celery.app import TASK_NAME, make_app

    [worker] = deployment.workers.start(1, concurrency=1)
    app = make_app()
    try:
        app.send_task(TASK_NAME, args=['{"dag_id": "x"}'], serializer="pickle",
                      queue=deployment.queue())
    finally:
        app.close()
    deadline = time.monotonic() + 20
    while "untrusted content of type pickle" not in deployment.workers.log(worker):
        assert time.monotonic() < deadline, deployment.workers.log(worker)[-2000:]
        time.sleep(0.2)
    assert worker.poll() is None
    assert deployment.ledger() == []


def test_reliability_defaults_of_the_celery_application(flow_home: Any) -> None:
    from flow_celery.app import make_app

    conf = make_app().conf
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_reject_on_worker_lost is False
    assert list(conf.accept_content) == ["json"] and list(conf.result_accept_content) == ["json"]
    assert conf.broker_transport_options["visibility_timeout"] == 6 * 3600


def test_result_backend_defaults_to_the_redis_broker_else_the_metadata_database(
        flow_home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_celery.settings import CelerySettings

    monkeypatch.setenv("FLOW__CELERY__BROKER_URL", "redis://:pw@cache:6379/3")
    assert CelerySettings.load().backend_url() == "redis://:pw@cache:6379/3"
    monkeypatch.setenv("FLOW__CELERY__BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    assert CelerySettings.load().backend_url() == f"db+{flow_home.database_url}"
    monkeypatch.setenv("FLOW__CELERY__RESULT_BACKEND", "redis://results:6379/1")
    assert CelerySettings.load().backend_url() == "redis://results:6379/1"
    assert "pw" not in repr(CelerySettings(broker_url="redis://:pw@cache:6379/3"))
