"""Worker pods: names, labels, the template merged with executor_config, and every manifest valid
against the official Kubernetes schema. No cluster needed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from flow.execution.workload import TaskKey, TaskWorkload
from flow_k8s import pod as pods_
from flow_k8s.settings import KubernetesConfigError, KubernetesSettings

K8S_VERSION = "1.37.0"


# What the API server checks beyond the schema: label keys and values, DNS-1123 names.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate(manifest: dict[str, Any]) -> None:
    """Fails with the schema's message when ``manifest`` is not a valid Pod, or naming the
    label or name the API server would refuse."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    metadata = manifest["metadata"]
    assert DNS_LABEL.match(metadata["name"]) and len(metadata["name"]) <= 63, metadata["name"]
    for name, value in metadata.get("labels", {}).items():
        assert len(value) <= 63 and LABEL_VALUE.match(value), f"label {name}={value!r}"


def workload(dag_id: str = "etl", task_id: str = "load", try_number: int = 1,
             run_id: str = "manual__2024-01-01T00:00:00+00:00", map_index: int = -1
             ) -> TaskWorkload:
    return TaskWorkload(dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number,
                        dag_file="/dags/etl.py", map_index=map_index)


SETTINGS = KubernetesSettings(image="registry.example/flow:1.0",
                              worker_command=("/opt/flow/bin/flow",))


def test_worker_pod_runs_the_workload_and_is_valid() -> None:
    job = workload()
    manifest = pods_.worker_pod(job, SETTINGS, "sched-1")
    validate(manifest)
    container = pods_.worker_container(manifest)
    assert container["command"][:4] == ["/opt/flow/bin/flow", "tasks", "run", "--workload"]
    assert TaskWorkload.from_json(container["command"][4]) == job
    assert container["image"] == "registry.example/flow:1.0"
    assert manifest["spec"]["restartPolicy"] == "Never"
    labels = manifest["metadata"]["labels"]
    assert labels["flow-dag-id"] == "etl" and labels["flow-task-id"] == "load"
    assert labels["flow-try-number"] == "1" and labels["flow-scheduler-id"] == "sched-1"
    assert pods_.key_of(manifest) == (job.key, 1)


def test_ids_kubernetes_cannot_hold_are_sanitised_in_labels_and_exact_in_annotations() -> None:
    odd = workload(dag_id="Sales Report (EU)/daily" + "x" * 80, task_id="extract.ÜBER_task",
                   run_id="scheduled__2024-05-01T00:00:00+00:00", map_index=7)
    manifest = pods_.worker_pod(odd, SETTINGS, "a scheduler id with spaces")
    validate(manifest)
    name = manifest["metadata"]["name"]
    assert len(name) <= 63 and name == name.lower()
    assert pods_.key_of(manifest) == (odd.key, 1)
    assert manifest["metadata"]["labels"]["flow-map-index"] == "7"


def test_pod_names_differ_per_try_and_per_task_instance() -> None:
    names = {pods_.pod_name("flow", k, t) for k in (TaskKey("d", "r", "t"),
                                                    TaskKey("d", "r", "t", 0),
                                                    TaskKey("d", "r2", "t"))
             for t in (1, 2)}
    assert len(names) == 6


def test_ids_that_sanitise_alike_keep_distinct_label_values() -> None:
    assert pods_.label_value("a b") != pods_.label_value("a_b")
    assert pods_.key_hash(TaskKey("d", "r", "a b")) != pods_.key_hash(TaskKey("d", "r", "a_b"))


FULL_CONFIG = {"kubernetes": {
    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                  "limits": {"memory": "1Gi"}},
    "node_selector": {"pool": "highmem"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "flow",
                     "effect": "NoSchedule"}],
    "labels": {"team": "data"},
    "annotations": {"example.com/owner": "data-team"},
    "env": {"MODE": "full"},
    "env_from": [{"secretRef": {"name": "flow-secrets"}}],
    "volumes": [{"name": "scratch", "emptyDir": {}}],
    "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}],
    "service_account_name": "flow-worker",
}}


def test_executor_config_overrides_land_in_the_pod_and_validate() -> None:
    manifest = pods_.worker_pod(workload(), SETTINGS, "s", FULL_CONFIG)
    validate(manifest)
    spec, container = manifest["spec"], pods_.worker_container(manifest)
    assert container["resources"]["limits"] == {"memory": "1Gi"}
    assert spec["nodeSelector"] == {"pool": "highmem"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["serviceAccountName"] == "flow-worker"
    assert {"name": "MODE", "value": "full"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "flow-secrets"}}]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert manifest["metadata"]["labels"]["team"] == "data"
    assert manifest["metadata"]["annotations"]["example.com/owner"] == "data-team"


TEMPLATE_YAML = """
apiVersion: v1
kind: Pod
metadata:
  labels: {app: flow}
spec:
  serviceAccountName: flow-default
  containers:
    - name: base
      image: registry.example/flow:2.0
      env:
        - name: FLOW__DATABASE__URL
          valueFrom: {secretKeyRef: {name: flow-db, key: url}}
        - name: MODE
          value: light
      volumeMounts:
        - {name: dags, mountPath: /dags}
    - name: sidecar
      image: registry.example/proxy:1
  volumes:
    - name: dags
      persistentVolumeClaim: {claimName: flow-dags}
"""


def test_template_file_is_merged_with_executor_config(tmp_path: Path) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text(TEMPLATE_YAML)
    settings = KubernetesSettings(pod_template_file=str(template), worker_command=("flow",))
    manifest = pods_.worker_pod(workload(), settings, "s", FULL_CONFIG)
    validate(manifest)
    container = pods_.worker_container(manifest)
    assert container["image"] == "registry.example/flow:2.0"  # the template's, not a default
    env = {item["name"]: item for item in container["env"]}
    assert env["MODE"]["value"] == "full"  # the task's value wins by name
    assert "secretKeyRef" in env["FLOW__DATABASE__URL"]["valueFrom"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/dags", "/scratch"]
    assert [v["name"] for v in manifest["spec"]["volumes"]] == ["dags", "scratch"]
    assert [c["name"] for c in manifest["spec"]["containers"]] == ["base", "sidecar"]
    assert manifest["spec"]["serviceAccountName"] == "flow-worker"
    assert manifest["metadata"]["labels"]["app"] == "flow"


def test_pod_override_merges_a_raw_pod_manifest() -> None:
    config = {"kubernetes": {"pod_override": {
        "spec": {"priorityClassName": "batch",
                 "containers": [{"name": "base", "securityContext": {"runAsNonRoot": True}}]}}}}
    manifest = pods_.worker_pod(workload(), SETTINGS, "s", config)
    validate(manifest)
    assert manifest["spec"]["priorityClassName"] == "batch"
    assert pods_.worker_container(manifest)["securityContext"] == {"runAsNonRoot": True}


def test_unknown_executor_config_key_is_an_error_naming_the_task_and_key() -> None:
    with pytest.raises(KubernetesConfigError, match=r"etl\.load.*node_selectr"):
        pods_.worker_pod(workload(), SETTINGS, "s", {"kubernetes": {"node_selectr": {}}})


def test_a_pod_without_any_image_is_an_error_naming_the_setting() -> None:
    with pytest.raises(KubernetesConfigError, match=r"\[kubernetes\] image"):
        pods_.worker_pod(workload(), KubernetesSettings(), "s")


def test_bad_template_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed")
    with pytest.raises(KubernetesConfigError, match=str(broken)):
        pods_.load_template(KubernetesSettings(pod_template_file=str(broken)))
    service = tmp_path / "service.yaml"
    service.write_text("kind: Service\n")
    with pytest.raises(KubernetesConfigError, match="must be a Pod"):
        pods_.load_template(KubernetesSettings(pod_template_file=str(service)))
    with pytest.raises(KubernetesConfigError, match="cannot be read"):
        pods_.load_template(KubernetesSettings(pod_template_file=str(tmp_path / "none.yaml")))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    from flow.config import Config

    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FLOW__KUBERNETES__NAMESPACE", "flow-prod")
    monkeypatch.setenv("FLOW__KUBERNETES__POD_TEMPLATE", json.dumps(
        {"spec": {"containers": [{"name": "base", "image": "x:1"}]}}))
    monkeypatch.setenv("FLOW__KUBERNETES__WORKER_COMMAND", '["/venv/bin/flow"]')
    monkeypatch.setenv("FLOW__KUBERNETES__DELETE_WORKER_PODS_ON_FAILURE", "true")
    settings = KubernetesSettings.load(Config())
    assert settings.namespace == "flow-prod"
    assert settings.worker_command == ("/venv/bin/flow",)
    assert settings.delete_worker_pods_on_failure is True
    assert pods_.load_template(settings)["spec"]["containers"][0]["image"] == "x:1"
    monkeypatch.setenv("FLOW__KUBERNETES__POD_TEMPLATE", "{not json")
    with pytest.raises(KubernetesConfigError, match="FLOW__KUBERNETES__POD_TEMPLATE"):
        KubernetesSettings.load(Config())


class _Try:
    dag_id, run_id, task_id, map_index, try_number = "etl", "manual__1", "transform", -1, 2


def test_pod_operator_manifests_are_valid_and_identify_the_try() -> None:
    from flow_k8s.operators import XCOM_MARKER, KubernetesPodOperator

    plain = KubernetesPodOperator(
        task_id="transform", image="registry.example/transform:3", cmds=["python"],
        arguments=["-m", "transform"], env_vars={"MODE": "daily"},
        resources={"limits": {"memory": "1Gi"}}, labels={"team": "data"},
        node_selector={"pool": "small"}, service_account_name="jobs",
        volumes=[{"name": "scratch", "emptyDir": {}}],
        volume_mounts=[{"name": "scratch", "mountPath": "/scratch"}])
    manifest = plain.build_pod({"ti": _Try()}, "jobs")
    validate(manifest)
    container = manifest["spec"]["containers"][0]
    assert (container["command"], container["args"]) == (["python"], ["-m", "transform"])
    assert manifest["metadata"]["namespace"] == "jobs"
    assert manifest["metadata"]["labels"]["flow-component"] == "pod-operator"
    assert pods_.key_of(manifest) == (TaskKey("etl", "manual__1", "transform"), 2)

    with_file = KubernetesPodOperator(task_id="report", image="x:1", cmds=["report"],
                                      xcom_result_path="/flow/xcom/return.json")
    wrapped = with_file.build_pod({"ti": _Try()})
    validate(wrapped)
    command = wrapped["spec"]["containers"][0]["command"]
    assert command[:2] == ["/bin/sh", "-c"] and XCOM_MARKER in command[2]
    assert command[-1] == "report"


def test_a_result_file_without_a_command_is_refused_naming_the_task() -> None:
    from flow_k8s.operators import KubernetesPodOperator

    with pytest.raises(ValueError, match=r"'report'.*xcom_result_path needs cmds"):
        KubernetesPodOperator(task_id="report", image="x:1", xcom_result_path="/r.json")


def test_the_pod_template_may_be_a_table_of_flow_toml(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from flow.config import Config

    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    for name in ("FLOW__KUBERNETES__POD_TEMPLATE", "FLOW__KUBERNETES__IMAGE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "flow.toml").write_text("""
[kubernetes]
namespace = "flow"

[kubernetes.pod_template.spec]
serviceAccountName = "flow-worker"
containers = [{name = "base", image = "registry.example/flow:1"}]
""")
    settings = KubernetesSettings.load(Config())
    manifest = pods_.worker_pod(workload(), settings, "s")
    validate(manifest)
    assert manifest["spec"]["serviceAccountName"] == "flow-worker"
    assert pods_.worker_container(manifest)["image"] == "registry.example/flow:1"


def test_a_missing_kubeconfig_is_an_error_naming_the_file(tmp_path: Path) -> None:
    from flow_k8s.client import api_client

    missing = tmp_path / "kubeconfig"
    with pytest.raises(KubernetesConfigError, match=str(missing)):
        api_client(KubernetesSettings(kubeconfig=str(missing)))
