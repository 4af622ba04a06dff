"""The KubernetesExecutor where Kubernetes gets in the way: killed pods, pods that cannot start,
an expired watch, a scheduler restart. Each test runs real pods on the test API server."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from k8s_testing import pods_of, task_log, wait_for

from flow.execution.workload import TaskWorkload
from flow.testing.environment import FlowEnvironment
from flow.testing.runner import DagRunOutcome, create_dag_run, queue_task, run_dag, task_states

HEAD = """
import os, time
from datetime import datetime, timedelta
from pathlib import Path
from flow import DAG
from flow.operators import PythonOperator

MARKS = Path({marks!r})

def dag(dag_id, **kwargs):
    return DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1), **kwargs)
"""


def write_dag(flow_env: FlowEnvironment, dag_files: Any, body: str) -> Any:
    marks = flow_env.home / "marks"
    marks.mkdir(exist_ok=True)
    return dag_files.dag(HEAD.format(marks=str(marks)) + body)


def run_in_background(dag: Any, executor: Any, engine: Any, timeout: float = 120
                      ) -> tuple[threading.Thread, list[DagRunOutcome | BaseException]]:
    result: list[DagRunOutcome | BaseException] = []

    def work() -> None:
        try:
            result.append(run_dag(dag, executor, engine=engine, timeout=timeout))
        except BaseException as err:  # handed to the test's thread
            result.append(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, result


def outcome_of(thread: threading.Thread, result: list[Any], timeout: float) -> DagRunOutcome:
    thread.join(timeout)
    assert result, "the run did not finish"
    if isinstance(result[0], BaseException):
        raise result[0]
    outcome: DagRunOutcome = result[0]
    return outcome


def test_a_pod_killed_mid_task_is_retried_with_the_reason_in_the_log(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
def work(ti):
    (MARKS / f"started-{ti.try_number}").touch()
    if ti.try_number == 1:
        time.sleep(60)

with dag("k8s_killed_pod"):
    PythonOperator(task_id="work", python_callable=work, retries=1,
                   retry_delay=timedelta(0))
""")
    executor = KubernetesExecutor(parallelism=2, settings=make_settings())
    try:
        thread, result = run_in_background(dag, executor, flow_env.engine)
        wait_for(lambda: (flow_env.home / "marks" / "started-1").exists(), 60,
                 "the first try started")
        [pod] = pods_of(kube_cluster, "work")
        kube_cluster.kill_container("default", pod["metadata"]["name"], signal.SIGKILL)
        outcome = outcome_of(thread, result, 120)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"work": "success"}
    assert outcome.try_numbers == {"work": 2}
    first = [e for e in outcome.events_for("work") if e.try_number == 1 and e.state != "running"]
    assert [e.state for e in first] == ["up_for_retry"]
    assert "exit code 137" in task_log(flow_env.home, dag.dag_id, "work", 1)


def test_a_pod_stuck_pending_past_its_timeout_fails_the_task_with_the_reason(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
with dag("k8s_pending"):
    PythonOperator(task_id="never", python_callable=lambda: None)
""")
    kube_cluster.hold_scheduling(True)
    executor = KubernetesExecutor(settings=make_settings(worker_pods_pending_timeout=2.0))
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
        kube_cluster.hold_scheduling(False)
    assert outcome.states == {"never": "failed"}
    log = task_log(flow_env.home, dag.dag_id, "never", 1)
    assert "worker_pods_pending_timeout" in log
    assert "Unschedulable" in log
    wait_for(lambda: not kube_cluster.pods(), 30, "the pending pod was deleted")


def test_an_image_that_cannot_be_pulled_fails_the_task_with_the_reason(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow.scheduling.processor import DagProcessor
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
with dag("k8s_bad_image"):
    PythonOperator(task_id="pull", python_callable=lambda: None,
                   executor_config={"kubernetes": {"image": "registry.example/does-not-exist:1"}})
""")
    DagProcessor(flow_env.dags_folder).process(force=True)  # executor_config comes from here
    executor = KubernetesExecutor(settings=make_settings(image_pull_grace=1.0))
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"pull": "failed"}
    log = task_log(flow_env.home, dag.dag_id, "pull", 1)
    assert "ErrImagePull" in log or "ImagePullBackOff" in log


def test_watch_expiry_mid_run_loses_no_event(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
with dag("k8s_expiry"):
    for index in range(4):
        PythonOperator(task_id=f"step_{index}", python_callable=lambda: time.sleep(1.0))
""")
    executor = KubernetesExecutor(parallelism=4, settings=make_settings())
    stop = threading.Event()

    def expire() -> None:
        while not stop.wait(0.3):
            kube_cluster.expire_watches()

    expiring = threading.Thread(target=expire, daemon=True)
    try:
        thread, result = run_in_background(dag, executor, flow_env.engine)
        expiring.start()
        outcome = outcome_of(thread, result, 120)
    finally:
        stop.set()
        expiring.join()
        executor.shutdown(wait=False)
    assert set(outcome.states.values()) == {"success"}
    for index in range(4):
        assert [e.state for e in outcome.events_for(f"step_{index}")
                if e.state != "running"] == ["success"]
    assert executor.watcher is not None and executor.watcher.relists >= 2


def test_a_restarted_executor_adopts_running_pods_and_deletes_orphans(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow_k8s import pod as pods_
    from flow_k8s.client import Pods, api_client
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
def steady():
    (MARKS / "started").touch()
    time.sleep(3)

with dag("k8s_restart"):
    PythonOperator(task_id="steady", python_callable=steady)
    PythonOperator(task_id="finished", python_callable=lambda: None)
""")
    run_id = create_dag_run(dag, flow_env.engine)
    first = KubernetesExecutor(settings=make_settings())
    first.start()
    workload = queue_task(dag, "steady", run_id, flow_env.engine)
    first.submit(workload)
    # An orphan: the pod of a try that is not queued or running (its scheduler died after
    # the try ended elsewhere); it would sleep for a minute if left alone.
    orphan_try = TaskWorkload(dag_id=dag.dag_id, run_id=run_id, task_id="finished",
                              try_number=1, dag_file=str(dag.fileloc))
    orphan = pods_.worker_pod(orphan_try, make_settings(), "a-dead-scheduler")
    pods_.worker_container(orphan)["command"] = ["sleep", "60"]
    settings = make_settings()
    pods = Pods(api_client(settings), "default")
    pods.create(orphan)
    wait_for(lambda: (flow_env.home / "marks" / "started").exists(), 60, "the task started")
    first.shutdown(wait=False)  # the scheduler dies; its pod runs on

    second = KubernetesExecutor(settings=make_settings())
    try:
        second.start()
        assert second.adopt([workload.key]) == []
        events: list[Any] = []
        wait_for(lambda: events.extend(second.events()) or any(
            e.state == "success" for e in events), 60, "the adopted try's success")
        wait_for(lambda: pods.read(orphan["metadata"]["name"]) is None, 30,
                 "the orphan was deleted")
    finally:
        second.shutdown(wait=False)
        pods.client.close()
    assert task_states(dag, run_id, flow_env.engine)["steady"] == ("success", 1)
    assert [e.state for e in events if e.key == workload.key][-1:] == ["success"]



def test_an_oom_killed_pod_fails_the_task_with_oomkilled_in_its_log(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow.scheduling.processor import DagProcessor
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
def hungry():
    block = b"x" * (800 * 1024 * 1024)
    time.sleep(20)
    return len(block)

with dag("k8s_oom"):
    PythonOperator(task_id="hungry", python_callable=hungry, executor_config={
        "kubernetes": {"resources": {"limits": {"memory": "500Mi"}}}})
""")
    DagProcessor(flow_env.dags_folder).process(force=True)  # executor_config comes from here
    executor = KubernetesExecutor(settings=make_settings())
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"hungry": "failed"}
    assert "OOMKilled" in task_log(flow_env.home, dag.dag_id, "hungry", 1)


def test_a_pod_adopted_by_another_executor_is_left_alone_by_its_first_owner(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
def steady():
    (MARKS / "started").touch()
    time.sleep(8)

with dag("k8s_two_owners"):
    PythonOperator(task_id="steady", python_callable=steady)
""")
    run_id = create_dag_run(dag, flow_env.engine)
    first = KubernetesExecutor(settings=make_settings())
    second = KubernetesExecutor(settings=make_settings())
    try:
        first.start()
        workload = queue_task(dag, "steady", run_id, flow_env.engine)
        first.submit(workload)
        wait_for(lambda: (flow_env.home / "marks" / "started").exists(), 60, "the task started")
        second.start()
        # The relabelled pod leaves the first executor's watch as DELETED; the first must not
        # take that for a dead pod and end the try that still runs.
        assert second.adopt([workload.key]) == []
        events: list[Any] = []
        wait_for(lambda: events.extend(second.events()) or any(
            e.state == "success" for e in events), 60, "the adopted try's success")
        assert not [e for e in first.events() if e.state != "running"]
    finally:
        first.shutdown(wait=False)
        second.shutdown(wait=False)
    assert task_states(dag, run_id, flow_env.engine)["steady"] == ("success", 1)


def test_an_unknown_executor_config_key_fails_the_try_naming_the_key(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any]) -> None:
    from flow.scheduling.processor import DagProcessor
    from flow_k8s.executor import KubernetesExecutor

    dag = write_dag(flow_env, dag_files, """
with dag("k8s_bad_config"):
    PythonOperator(task_id="typo", python_callable=lambda: None,
                   executor_config={"kubernetes": {"node_selectr": {"pool": "x"}}})
""")
    DagProcessor(flow_env.dags_folder).process(force=True)
    executor = KubernetesExecutor(settings=make_settings())
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"typo": "failed"}
    log = task_log(flow_env.home, dag.dag_id, "typo", 1)
    assert "node_selectr" in log and "k8s_bad_config.typo" in log
    assert not kube_cluster.pods()
