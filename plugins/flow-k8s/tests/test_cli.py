"""``flow k8s generate-pod`` and ``flow k8s cleanup``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes_validate
import yaml
from click.testing import CliRunner
from k8s_testing import pods_of

from flow.testing.environment import FlowEnvironment
from flow.testing.runner import run_dag

DAG_SOURCE = """
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator

def boom():
    raise RuntimeError("deliberate")

with DAG("k8s_cli", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="ok", python_callable=lambda: None,
                   executor_config={"kubernetes": {
                       "resources": {"limits": {"memory": "256Mi"}},
                       "node_selector": {"pool": "small"}}})
    PythonOperator(task_id="boom", python_callable=boom)
"""


def test_generate_pod_prints_the_pod_a_task_would_get(
        flow_env: FlowEnvironment, flow_plugins: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    from flow_k8s.cli import k8s

    (flow_env.dags_folder / "k8s_cli.py").write_text(DAG_SOURCE)
    k8s_environment()
    result = CliRunner().invoke(k8s, ["generate-pod", "k8s_cli", "ok", "--run-id", "manual__1"])
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    container = manifest["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"memory": "256Mi"}}
    assert manifest["spec"]["nodeSelector"] == {"pool": "small"}
    assert '"run_id": "manual__1"' in container["command"][-1]
    assert manifest["metadata"]["labels"]["flow-task-id"] == "ok"


def test_generate_pod_masks_secrets_in_the_pod_env(
        flow_env: FlowEnvironment, flow_plugins: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    import json

    from k8s_testing import pod_template

    from flow_k8s.cli import k8s

    template = pod_template()
    template["spec"]["containers"][0]["env"] += [
        {"name": "FLOW__DATABASE__URL", "value": "postgresql+psycopg://flow:hunter2-db@db/flow"},
        {"name": "API_TOKEN", "value": "tok-5e3cr3t"}]
    (flow_env.dags_folder / "k8s_cli.py").write_text(DAG_SOURCE)
    k8s_environment(pod_template=json.dumps(template))
    result = CliRunner().invoke(k8s, ["generate-pod", "k8s_cli", "ok"])
    assert result.exit_code == 0, result.output
    env = {item["name"]: item.get("value")
           for item in yaml.safe_load(result.stdout)["spec"]["containers"][0]["env"]}
    assert env["FLOW__DATABASE__URL"] == "postgresql+psycopg://flow:***@db/flow"
    assert env["API_TOKEN"] == "***"
    assert env["FLOW__CORE__FERNET_KEY"] == "***"
    for secret in ("hunter2-db", "tok-5e3cr3t", flow_env_fernet_key()):
        assert secret not in result.output


def flow_env_fernet_key() -> str:
    import os

    return os.environ["FLOW__CORE__FERNET_KEY"]


def test_generate_pod_names_a_missing_task(
        flow_env: FlowEnvironment, flow_plugins: Any,
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    from flow_k8s.cli import k8s

    (flow_env.dags_folder / "k8s_cli.py").write_text(DAG_SOURCE)
    k8s_environment()
    result = CliRunner().invoke(k8s, ["generate-pod", "k8s_cli", "nope"])
    assert result.exit_code != 0
    assert "has no task 'nope'" in result.output


def test_cleanup_deletes_kept_failed_pods_and_dry_run_deletes_nothing(
        flow_env: FlowEnvironment, dag_files: Any, flow_plugins: Any, kube_cluster: Any,
        make_settings: Callable[..., Any],
        k8s_environment: Callable[..., dict[str, str]]) -> None:
    from flow_k8s.cli import k8s
    from flow_k8s.executor import KubernetesExecutor

    dag = dag_files.dag(DAG_SOURCE, name="k8s_cli.py")
    executor = KubernetesExecutor(parallelism=2,
                                  settings=make_settings(delete_worker_pods_on_failure=False))
    try:
        outcome = run_dag(dag, executor, engine=flow_env.engine, timeout=60)
    finally:
        executor.shutdown(wait=False)
    assert outcome.states == {"ok": "success", "boom": "failed"}
    assert not pods_of(kube_cluster, "ok"), "a succeeded pod was kept"
    [kept] = pods_of(kube_cluster, "boom")
    assert kept["status"]["phase"] == "Failed"

    k8s_environment()
    dry = CliRunner().invoke(k8s, ["cleanup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would delete pod {kept['metadata']['name']}" in dry.output
    assert pods_of(kube_cluster, "boom"), "--dry-run deleted a pod"
    real = CliRunner().invoke(k8s, ["cleanup"])
    assert real.exit_code == 0, real.output
    assert f"deleted pod {kept['metadata']['name']}" in real.output
    kube_cluster.wait_for_no_pods(timeout=30)
