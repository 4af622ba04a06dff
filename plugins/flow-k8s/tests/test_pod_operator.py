"""KubernetesPodOperator against the test API server, its tasks run by flow's local executor:
success with XCom, failure with the exit code, live log streaming, a result file, and a timeout
that deletes the pod."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_testing import task_log, wait_for

from flow.testing.environment import FlowEnvironment
from flow.testing.runner import DagRunOutcome, run_dag

HEAD = """
from datetime import datetime, timedelta
from flow import DAG
from flow_k8s.operators import KubernetesPodOperator

def dag(dag_id):
    return DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1))
"""


@pytest.fixture
def run_pod_dag(flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any,
                kube_cluster: Any, k8s_environment: Callable[..., dict[str, str]]
                ) -> Callable[[str], tuple[Any, DagRunOutcome]]:
    """``run_pod_dag(body)``: write the DAG, run it through a local executor."""
    from flow.builtin.executors.local import LocalExecutor

    k8s_environment()
    executors: list[Any] = []

    def run(body: str) -> tuple[Any, DagRunOutcome]:
        dag = dag_files.dag(HEAD + body)
        executor = LocalExecutor(parallelism=2)
        executors.append(executor)
        return dag, run_dag(dag, executor, engine=flow_env.engine, timeout=90)

    yield run
    for executor in executors:
        executor.shutdown(wait=False)


def xcom(flow_env: FlowEnvironment, dag_id: str, run_id: str, task_id: str) -> Any:
    from flow.execution.xcom import get_xcom_backend
    from flow.store.session import session_scope

    with session_scope(flow_env.engine) as session:
        return get_xcom_backend().get_one(dag_id=dag_id, run_id=run_id, task_id=task_id,
                                          session=session)


def test_a_successful_pod_logs_its_output_and_pushes_its_last_line(
        run_pod_dag: Callable[[str], tuple[Any, DagRunOutcome]], flow_env: FlowEnvironment,
        kube_cluster: Any) -> None:
    dag, outcome = run_pod_dag("""
with dag("kpo_success"):
    KubernetesPodOperator(task_id="hello", image="busybox:test",
                          cmds=["sh", "-c"],
                          arguments=['echo "hello from $WHO"; echo \\'{"answer": 42}\\''],
                          env_vars={"WHO": "the pod"}, labels={"team": "data"},
                          resources={"limits": {"memory": "64Mi"}})
""")
    assert outcome.states == {"hello": "success"}
    log = task_log(flow_env.home, dag.dag_id, "hello", 1)
    assert "hello from the pod" in log
    assert xcom(flow_env, dag.dag_id, outcome.run_id, "hello") == {"answer": 42}
    assert not kube_cluster.pods(), "the pod was not deleted after success"


def test_a_failing_pod_fails_the_task_with_its_exit_code(
        run_pod_dag: Callable[[str], tuple[Any, DagRunOutcome]], flow_env: FlowEnvironment,
        kube_cluster: Any) -> None:
    dag, outcome = run_pod_dag("""
with dag("kpo_failure"):
    KubernetesPodOperator(task_id="sad", image="busybox:test",
                          cmds=["sh", "-c", "echo about to fail; exit 3"])
""")
    assert outcome.states == {"sad": "failed"}
    log = task_log(flow_env.home, dag.dag_id, "sad", 1)
    assert "about to fail" in log
    assert "exit code 3" in log
    assert not kube_cluster.pods(), "the pod was not deleted after failure"


def test_the_pod_log_reaches_the_task_log_while_the_pod_runs(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    from flow.builtin.executors.local import LocalExecutor

    k8s_environment()
    dag = dag_files.dag(HEAD + """
with dag("kpo_streaming"):
    KubernetesPodOperator(task_id="slow", image="busybox:test",
                          cmds=["sh", "-c", "echo first line; sleep 4; echo second line"])
""")
    executor = LocalExecutor(parallelism=1)
    result: list[DagRunOutcome] = []
    thread = threading.Thread(target=lambda: result.append(
        run_dag(dag, executor, engine=flow_env.engine, timeout=60)), daemon=True)
    try:
        thread.start()
        wait_for(lambda: "first line" in task_log(flow_env.home, dag.dag_id, "slow", 1), 30,
                 "the first line in the task log")
        assert "second line" not in task_log(flow_env.home, dag.dag_id, "slow", 1)
        thread.join(60)
    finally:
        executor.shutdown(wait=False)
    assert result and result[0].states == {"slow": "success"}
    assert "second line" in task_log(flow_env.home, dag.dag_id, "slow", 1)


def test_a_result_file_becomes_the_xcom(
        run_pod_dag: Callable[[str], tuple[Any, DagRunOutcome]], flow_env: FlowEnvironment,
        tmp_path: Path) -> None:
    # With the process kubelet the container's filesystem is this machine's: a temp path.
    result_path = tmp_path / "xcom" / "return.json"
    script = """echo working; printf '%s' '{"rows": 5}' > "$FLOW_XCOM_RESULT\""""
    dag, outcome = run_pod_dag(f"""
with dag("kpo_result_file"):
    KubernetesPodOperator(task_id="report", image="busybox:test", cmds=["sh", "-c", {script!r}],
                          xcom_result_path={str(result_path)!r})
""")
    assert outcome.states == {"report": "success"}
    assert xcom(flow_env, dag.dag_id, outcome.run_id, "report") == {"rows": 5}
    assert "working" in task_log(flow_env.home, dag.dag_id, "report", 1)


def test_a_timed_out_task_deletes_its_pod(
        run_pod_dag: Callable[[str], tuple[Any, DagRunOutcome]], flow_env: FlowEnvironment,
        kube_cluster: Any) -> None:
    started = time.monotonic()
    dag, outcome = run_pod_dag("""
with dag("kpo_timeout"):
    KubernetesPodOperator(task_id="sleepy", image="busybox:test", cmds=["sleep", "120"],
                          execution_timeout=timedelta(seconds=3))
""")
    assert outcome.states == {"sleepy": "failed"}
    assert time.monotonic() - started < 60
    assert "Deleted pod" in task_log(flow_env.home, dag.dag_id, "sleepy", 1)
    wait_for(lambda: not kube_cluster.pods(), 20, "the timed-out task's pod was deleted")


def test_an_image_that_cannot_be_pulled_fails_the_task_with_the_reason(
        run_pod_dag: Callable[[str], tuple[Any, DagRunOutcome]], flow_env: FlowEnvironment,
        kube_cluster: Any) -> None:
    dag, outcome = run_pod_dag("""
with dag("kpo_bad_image"):
    KubernetesPodOperator(task_id="pull", image="registry.example/does-not-exist:1",
                          cmds=["true"], startup_timeout_seconds=30)
""")
    assert outcome.states == {"pull": "failed"}
    log = task_log(flow_env.home, dag.dag_id, "pull", 1)
    assert "ErrImagePull" in log or "ImagePullBackOff" in log


def test_a_kubernetes_connection_reaches_the_cluster_and_its_token_stays_secret(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        k8s_environment: Callable[..., dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from flow.builtin.executors.local import LocalExecutor

    # No usable kubeconfig: only the connection can lead to the cluster.
    k8s_environment(kubeconfig=str(flow_env.home / "no-such-kubeconfig"))
    monkeypatch.setenv("FLOW_CONN_TEST_CLUSTER", json.dumps(
        {"conn_type": "kubernetes", "host": kube_cluster.url, "password": kube_cluster.token}))
    dag = dag_files.dag(HEAD + """
with dag("kpo_connection"):
    KubernetesPodOperator(task_id="hello", image="busybox:test", cmds=["echo", "via conn"],
                          kubernetes_conn_id="test_cluster")
""")
    executor = LocalExecutor(parallelism=1)
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"hello": "success"}
    log = task_log(flow_env.home, dag.dag_id, "hello", 1)
    assert "via conn" in log
    assert kube_cluster.token not in log
