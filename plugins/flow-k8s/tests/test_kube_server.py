"""The test API server and process kubelet, driven through the official `kubernetes` client:
what flow-k8s's own tests rely on them to do like a real cluster."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).parent))

from kube import KubeCluster, KubeClusterError

PYTHON = "python"  # found on the containers' PATH: the test venv's bin folder comes first
SCHEMA_VERSION = "1.31"


@pytest.fixture
def core(kube_cluster: KubeCluster) -> Iterator[client.CoreV1Api]:
    with kube_cluster.api_client() as api_client:
        yield client.CoreV1Api(api_client)


def pod_manifest(name: str, script: str | None = None, *, labels: dict[str, str] | None = None,
                 image: str = "python:3.12-slim", **spec: Any) -> dict[str, Any]:
    """A pod running `python -c script`, checked against the official schema first."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if script is not None:
        container["command"] = [PYTHON, "-c", script]
    container.update(spec.pop("container", {}))
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {}},
                "spec": {"restartPolicy": "Never", "containers": [container], **spec}}
    kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
    return manifest


def wait_for(predicate: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_phase(core: client.CoreV1Api, name: str, *phases: str,
                   timeout: float = 15) -> client.V1Pod:
    def current() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, "default")
        return pod if pod.status.phase in phases else None
    return wait_for(current, timeout, f"pod {name} to reach {' or '.join(phases)}")


def events_of(core: client.CoreV1Api, pod: str, reason: str) -> list[client.CoreV1Event]:
    return [event for event in core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod}").items if event.reason == reason]


def delete_and_wait(core: client.CoreV1Api, cluster: KubeCluster, *names: str) -> None:
    for name in names:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    cluster.wait_for_no_pods(10)


# -- the API ----------------------------------------------------------------------------------

def test_pods_are_listed_and_watched_through_label_and_field_selectors(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    for name, labels in (("a-one", {"dag": "a", "try": "1"}), ("a-two", {"dag": "a"}),
                         ("b-one", {"dag": "b", "try": "1"})):
        core.create_namespaced_pod("default", pod_manifest(name, "pass", labels=labels))

    def names(**selectors: str) -> list[str]:
        pods = core.list_namespaced_pod("default", **selectors).items
        return sorted(pod.metadata.name for pod in pods)

    assert names(label_selector="dag=a") == ["a-one", "a-two"]
    assert names(label_selector="dag==a,try") == ["a-one"]
    assert names(label_selector="dag!=a") == ["b-one"]
    assert names(label_selector="dag in (a, b),!try") == ["a-two"]
    assert names(label_selector="dag notin (a)") == ["b-one"]
    assert names(field_selector="metadata.name=b-one") == ["b-one"]
    assert names(field_selector="status.phase=Pending,metadata.name!=a-one") == ["a-two", "b-one"]
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(
        label_selector="dag=b").items] == ["b-one"]

    stream = watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="dag=a",
                                  timeout_seconds=5)
    initial = [next(stream) for _ in range(2)]
    assert sorted((e["type"], e["object"].metadata.name) for e in initial) == [
        ("ADDED", "a-one"), ("ADDED", "a-two")]
    core.patch_namespaced_pod("a-two", "default", {"metadata": {"labels": {"dag": "c"}}})
    # The scheduler's Unschedulable reports may come first, as MODIFIED.
    left = next(event for event in stream if event["type"] != "MODIFIED")
    assert (left["type"], left["object"].metadata.name) == ("DELETED", "a-two")
    assert left["object"].metadata.labels["dag"] == "c"
    delete_and_wait(core, kube_cluster, "a-one", "a-two", "b-one")


def test_a_watch_resumes_from_a_resource_version_without_losing_events(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    listed = core.list_namespaced_pod("default")
    core.create_namespaced_pod("default", pod_manifest("first", "pass"))
    core.create_namespaced_pod("default", pod_manifest("second", "pass"))
    core.delete_namespaced_pod("first", "default")
    events = watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=2,
                                  resource_version=listed.metadata.resource_version)
    seen = [(e["type"], e["object"].metadata.name, int(e["object"].metadata.resource_version))
            for e in events]
    # The scheduler's Unschedulable reports come in between as MODIFIED events.
    assert [(kind, name) for kind, name, _ in seen if kind != "MODIFIED"] == [
        ("ADDED", "first"), ("ADDED", "second"), ("DELETED", "first")]
    versions = [version for _, _, version in seen]
    assert versions == sorted(set(versions))
    assert versions[0] > int(listed.metadata.resource_version)
    delete_and_wait(core, kube_cluster, "second")


def test_an_expired_resource_version_gets_410_gone(core: client.CoreV1Api,
                                                     kube_cluster: KubeCluster) -> None:
    old = core.list_namespaced_pod("default").metadata.resource_version
    kube_cluster.expire_watches()
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default",
                                      resource_version=old, timeout_seconds=2):
            pass
    assert gone.value.status == 410
    with pytest.raises(ApiException) as listing:
        core.list_namespaced_pod("default", resource_version=old,
                                 resource_version_match="Exact")
    assert listing.value.status == 410
    fresh = core.list_namespaced_pod("default").metadata.resource_version
    assert list(watch.Watch().stream(core.list_namespaced_pod, "default",
                                     resource_version=fresh, timeout_seconds=1)) == []


def test_an_open_watch_ends_when_history_is_compacted_and_its_resume_gets_410(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    resource_version = core.list_namespaced_pod("default").metadata.resource_version
    outcome: list[Any] = []

    def follow() -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_pod, "default",
                                          resource_version=resource_version):
                pass
        except ApiException as error:
            outcome.append(error.status)

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.3)
    kube_cluster.expire_watches()
    watcher.join(10)
    assert outcome == [410]


def test_a_quiet_watch_gets_bookmarks_with_the_current_resource_version(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("marked", "pass"))
    wait_for_phase(core, "marked", "Succeeded")
    listed = core.list_namespaced_pod("default", field_selector="spec.nodeName=flow-node-0")
    assert [pod.metadata.name for pod in listed.items] == ["marked"]
    assert core.list_namespaced_pod("default", field_selector="spec.nodeName=elsewhere").items == []
    bookmarks = [event for event in watch.Watch().stream(
        core.list_namespaced_pod, "default", resource_version=listed.metadata.resource_version,
        allow_watch_bookmarks=True, timeout_seconds=3) if event["type"] == "BOOKMARK"]
    assert bookmarks
    assert int(bookmarks[-1]["raw_object"]["metadata"]["resourceVersion"]) >= \
        int(listed.metadata.resource_version)
    delete_and_wait(core, kube_cluster, "marked")


def test_a_duplicate_create_and_a_stale_replace_conflict(core: client.CoreV1Api,
                                                         kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    core.create_namespaced_pod("default", pod_manifest("twin", "pass"))
    # Let the scheduler's one Unschedulable report land before reading what to replace.
    created = wait_for(lambda: (pod := core.read_namespaced_pod("twin", "default"))
                       .status.conditions and pod, what="the Unschedulable condition")
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_pod("default", pod_manifest("twin", "pass"))
    assert duplicate.value.status == 409 and '"AlreadyExists"' in duplicate.value.body
    core.patch_namespaced_pod("twin", "default", {"metadata": {"annotations": {"a": "1"}}})
    created.metadata.labels = {"changed": "yes"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_pod("twin", "default", created)
    assert stale.value.status == 409 and '"Conflict"' in stale.value.body
    current = core.read_namespaced_pod("twin", "default")
    current.metadata.labels = {"changed": "yes"}
    replaced = core.replace_namespaced_pod("twin", "default", current)
    assert replaced.metadata.labels == {"changed": "yes"}
    assert replaced.metadata.annotations == {"a": "1"}
    delete_and_wait(core, kube_cluster, "twin")


@pytest.mark.parametrize(("manifest", "field"), [
    ({"metadata": {"name": "no-containers"}, "spec": {"containers": []}}, "spec.containers"),
    ({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [
        {"name": "main", "image": "x"}]}}, "metadata.name"),
    ({"metadata": {"name": "twins"}, "spec": {"containers": [
        {"name": "main", "image": "x"}, {"name": "main", "image": "y"}]}},
     "spec.containers[1].name"),
    ({"metadata": {"name": "bad-label", "labels": {"k": "not ok!"}}, "spec": {"containers": [
        {"name": "main", "image": "x"}]}}, "metadata.labels"),
])
def test_an_invalid_pod_is_rejected_with_422_naming_the_field(
        core: client.CoreV1Api, manifest: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", **manifest})
    assert invalid.value.status == 422
    assert '"reason": "Invalid"' in invalid.value.body and f'"field": "{field}"' in \
        invalid.value.body


def test_a_request_without_the_token_gets_401(kube_cluster: KubeCluster) -> None:
    configuration = client.Configuration(host=kube_cluster.url)
    with client.ApiClient(configuration) as anonymous:
        with pytest.raises(ApiException) as unauthorized:
            client.CoreV1Api(anonymous).list_namespaced_pod("default")
    assert unauthorized.value.status == 401
    assert client.VersionApi(kube_cluster.api_client()).get_code().git_version.startswith("v1.")


def test_a_missing_pod_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nobody", "default")
    assert missing.value.status == 404 and 'pods \\"nobody\\" not found' in missing.value.body


# -- the kubelet ------------------------------------------------------------------------------

def test_a_pod_runs_its_command_and_succeeds_with_its_log(core: client.CoreV1Api,
                                                          kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("hello", "print('hi')"))
    pod = wait_for_phase(core, "hello", "Succeeded")
    assert pod.spec.node_name == "flow-node-0"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    assert core.read_namespaced_pod_log("hello", "default") == "hi\n"
    assert core.read_namespaced_pod_log("hello", "default", timestamps=True).endswith("Z hi\n")
    delete_and_wait(core, kube_cluster, "hello")


def test_exit_code_3_fails_the_pod_with_exit_code_3(core: client.CoreV1Api,
                                                    kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest(
        "three", "import sys; print('bad', file=sys.stderr); sys.exit(3)"))
    pod = wait_for_phase(core, "three", "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert core.read_namespaced_pod_log("three", "default") == "bad\n"
    delete_and_wait(core, kube_cluster, "three")


def test_log_follow_streams_lines_as_they_come(core: client.CoreV1Api,
                                               kube_cluster: KubeCluster, tmp_path: Path) -> None:
    finished = tmp_path / "finished"
    script = ("import time\nfor i in range(3):\n    print(f'line {i}', flush=True)\n"
              f"    time.sleep(0.6)\nopen({str(finished)!r}, 'w').close()\n")
    core.create_namespaced_pod("default", pod_manifest("chatty", script))
    wait_for_phase(core, "chatty", "Running")
    lines, ended_before_first_line = [], None
    for line in watch.Watch().stream(core.read_namespaced_pod_log, "chatty", "default"):
        if ended_before_first_line is None:
            ended_before_first_line = finished.exists()
        lines.append(line)
    assert lines == ["line 0", "line 1", "line 2"]
    assert ended_before_first_line is False  # the first line came while the process ran
    assert finished.exists()  # and the stream ended only with the process
    assert core.read_namespaced_pod_log("chatty", "default", tail_lines=1) == "line 2\n"
    delete_and_wait(core, kube_cluster, "chatty")


def test_deleting_a_running_pod_terminates_its_process_and_then_the_pod(
        core: client.CoreV1Api, kube_cluster: KubeCluster, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
              "time.sleep(60)")
    core.create_namespaced_pod("default", pod_manifest("sleeper", script))
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the process to start")
    pid = int(pid_file.read_text())
    deleted = core.delete_namespaced_pod("sleeper", "default")
    assert deleted.metadata.deletion_timestamp is not None
    kube_cluster.wait_for_no_pods(10)
    assert not _alive(pid)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    script = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('ready', flush=True)\ntime.sleep(60)")
    core.create_namespaced_pod("default", pod_manifest("stubborn", script,
                                                       terminationGracePeriodSeconds=1))
    wait_for(lambda: core.read_namespaced_pod_log("stubborn", "default") == "ready\n"
             if core.read_namespaced_pod("stubborn", "default").status.phase == "Running"
             else None, what="the process to ignore SIGTERM")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", "default")
    assert core.read_namespaced_pod("stubborn", "default").metadata.deletion_timestamp
    kube_cluster.wait_for_no_pods(10)
    assert time.monotonic() - started >= 0.9


def test_a_second_delete_shortens_the_grace_period(core: client.CoreV1Api,
                                                   kube_cluster: KubeCluster) -> None:
    script = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('ready', flush=True)\ntime.sleep(120)")
    core.create_namespaced_pod("default", pod_manifest("slow-to-die", script,
                                                       terminationGracePeriodSeconds=60))
    wait_for(lambda: core.read_namespaced_pod("slow-to-die", "default").status.phase ==
             "Running" and core.read_namespaced_pod_log("slow-to-die", "default") == "ready\n",
             what="the process to ignore SIGTERM")
    core.delete_namespaced_pod("slow-to-die", "default")
    first = core.read_namespaced_pod("slow-to-die", "default").metadata
    assert first.deletion_grace_period_seconds == 60
    core.delete_namespaced_pod("slow-to-die", "default", grace_period_seconds=1)
    assert core.read_namespaced_pod("slow-to-die", "default").metadata \
        .deletion_grace_period_seconds == 1
    kube_cluster.wait_for_no_pods(15)  # far sooner than the first delete's 60 s


def test_a_killed_container_fails_the_pod_with_128_plus_the_signal(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("victim", "import time; time.sleep(60)"))
    wait_for_phase(core, "victim", "Running")
    kube_cluster.kill_container("default", "victim", signal.SIGKILL)
    pod = wait_for_phase(core, "victim", "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "Error")
    delete_and_wait(core, kube_cluster, "victim")


def test_a_pod_over_its_memory_limit_is_oom_killed(core: client.CoreV1Api,
                                                   kube_cluster: KubeCluster) -> None:
    script = "import time; block = bytearray(200 * 1024 * 1024); time.sleep(10)"
    core.create_namespaced_pod("default", pod_manifest(
        "hungry", script, container={"resources": {"limits": {"memory": "100Mi"}}}))
    pod = wait_for_phase(core, "hungry", "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")
    delete_and_wait(core, kube_cluster, "hungry")


def test_held_scheduling_keeps_pods_pending_as_unschedulable(core: client.CoreV1Api,
                                                             kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    core.create_namespaced_pod("default", pod_manifest("waiting", "pass"))

    def unschedulable() -> client.V1PodCondition | None:
        pod = core.read_namespaced_pod("waiting", "default")
        return next((c for c in pod.status.conditions or []
                     if c.type == "PodScheduled" and c.reason == "Unschedulable"), None)

    condition = wait_for(unschedulable, what="the Unschedulable condition")
    assert condition.status == "False" and "unschedulable" in condition.message
    assert wait_for(lambda: events_of(core, "waiting", "FailedScheduling"),
                    what="the FailedScheduling event")[0].message == condition.message
    assert core.read_namespaced_pod("waiting", "default").status.phase == "Pending"
    kube_cluster.hold_scheduling(False)
    wait_for_phase(core, "waiting", "Succeeded")
    delete_and_wait(core, kube_cluster, "waiting")


def test_a_missing_image_stays_pending_in_err_image_pull(core: client.CoreV1Api,
                                                        kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("no-image", "pass",
                                                       image="example/does-not-exist:1"))
    reasons = set()

    def both_reasons() -> bool:
        pod = core.read_namespaced_pod("no-image", "default")
        assert pod.status.phase == "Pending"
        for status in pod.status.container_statuses or []:
            if status.state.waiting:
                reasons.add(status.state.waiting.reason)
        return reasons >= {"ErrImagePull", "ImagePullBackOff"}

    wait_for(both_reasons, timeout=10, what="ErrImagePull then ImagePullBackOff")
    failed = events_of(core, "no-image", "Failed")
    assert failed and failed[0].type == "Warning" and "does-not-exist" in failed[0].message
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log("no-image", "default")
    assert waiting.value.status == 400 and "waiting to start" in waiting.value.body
    delete_and_wait(core, kube_cluster, "no-image")


def test_a_container_gets_only_its_pods_environment(core: client.CoreV1Api,
                                                    kube_cluster: KubeCluster,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "creds"},
                                              "stringData": {"password": "s3cret"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "settings"},
                                                  "data": {"LEVEL": "debug"}})
    script = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items()}))")
    env = [{"name": "PLAIN", "value": "x-$(POD_NAME)"},
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                               "key": "password"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    core.create_namespaced_pod("default", pod_manifest("env", script, container={
        "env": env, "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]}))
    wait_for_phase(core, "env", "Succeeded")
    import json
    seen = json.loads(core.read_namespaced_pod_log("env", "default"))
    assert seen["PASSWORD"] == "s3cret" and seen["POD_NAME"] == "env" and seen["NS"] == "default"
    assert seen["CFG_LEVEL"] == "debug"
    assert seen["PLAIN"] == "x-$(POD_NAME)"  # only variables defined earlier expand
    assert "PYTEST_CURRENT_TEST" not in seen and "VIRTUAL_ENV" not in seen
    assert seen["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    delete_and_wait(core, kube_cluster, "env")


def test_a_job_runs_a_pod_with_its_labels_and_reports_completion(
        kube_cluster: KubeCluster, core: client.CoreV1Api) -> None:
    batch = client.BatchV1Api(kube_cluster.api_client())
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "once", "labels": {"app": "flow"}},
           "spec": {"backoffLimit": 0, "template": {
               "metadata": {"labels": {"app": "flow"}},
               "spec": {"restartPolicy": "Never", "containers": [
                   {"name": "main", "image": "python:3.12", "command": [PYTHON, "-c",
                                                                        "print('job')"]}]}}}}
    kubernetes_validate.validate(job, SCHEMA_VERSION, strict=True)
    batch.create_namespaced_job("default", job)

    def complete() -> client.V1Job | None:
        current = batch.read_namespaced_job("once", "default")
        done = any(c.type == "Complete" and c.status == "True"
                   for c in current.status.conditions or [])
        return current if done else None

    finished = wait_for(complete, what="the job to complete")
    assert finished.status.succeeded == 1 and not finished.status.active
    pods = core.list_namespaced_pod("default", label_selector="job-name=once").items
    assert len(pods) == 1 and pods[0].metadata.labels["app"] == "flow"
    assert pods[0].metadata.owner_references[0].uid == finished.metadata.uid
    assert core.read_namespaced_pod_log(pods[0].metadata.name, "default") == "job\n"
    batch.delete_namespaced_job("once", "default", propagation_policy="Background")
    kube_cluster.wait_for_no_pods(10)


def test_a_failing_job_gets_a_new_pod_until_its_backoff_limit(
        kube_cluster: KubeCluster, core: client.CoreV1Api) -> None:
    batch = client.BatchV1Api(kube_cluster.api_client())
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "flaky"},
           "spec": {"backoffLimit": 1, "template": {"spec": {
               "restartPolicy": "Never", "containers": [
                   {"name": "main", "image": "python:3.12",
                    "command": [PYTHON, "-c", "raise SystemExit(2)"]}]}}}}
    kubernetes_validate.validate(job, SCHEMA_VERSION, strict=True)
    batch.create_namespaced_job("default", job)

    def failed() -> client.V1Job | None:
        current = batch.read_namespaced_job("flaky", "default")
        return current if any(c.type == "Failed" and c.status == "True"
                              for c in current.status.conditions or []) else None

    finished = wait_for(failed, what="the job to fail")
    assert finished.status.failed == 2
    assert [c.reason for c in finished.status.conditions if c.type == "Failed"] == [
        "BackoffLimitExceeded"]
    pods = core.list_namespaced_pod("default", label_selector="job-name=flaky").items
    assert sorted(p.status.container_statuses[0].state.terminated.exit_code
                  for p in pods) == [2, 2]
    batch.delete_namespaced_job("flaky", "default", propagation_policy="Foreground")
    kube_cluster.wait_for_no_pods(10)


def test_a_pod_without_a_command_or_with_a_missing_executable_fails_to_start(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("no-command"))
    core.create_namespaced_pod("default", pod_manifest(
        "no-such-program", container={"command": ["no-such-program-anywhere"]}))
    for name, words in (("no-command", "has no `command`"),
                        ("no-such-program", "executable file not found")):
        pod = wait_for_phase(core, name, "Failed")
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.exit_code, terminated.reason) == (128, "StartError")
        assert words in terminated.message
    delete_and_wait(core, kube_cluster, "no-command", "no-such-program")


def test_a_graceful_delete_reports_the_sigterm_exit_before_the_pod_goes(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("polite", "import time; time.sleep(60)"))
    running = wait_for_phase(core, "polite", "Running")
    events = watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=10,
                                  resource_version=running.metadata.resource_version)
    core.delete_namespaced_pod("polite", "default")
    seen = []
    for event in events:
        seen.append(event)
        if event["type"] == "DELETED":
            break
    last = seen[-1]["object"]
    assert seen[-1]["type"] == "DELETED" and last.metadata.deletion_timestamp is not None
    terminated = last.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, last.status.phase) == (143, "Failed")


def test_restart_policy_on_failure_restarts_the_container_in_place(
        core: client.CoreV1Api, kube_cluster: KubeCluster, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    script = (f"import os, sys\nif not os.path.exists({str(marker)!r}):\n"
              f"    open({str(marker)!r}, 'w').close(); print('first'); sys.exit(1)\n"
              "print('second')")
    core.create_namespaced_pod("default", pod_manifest("again", script,
                                                       restartPolicy="OnFailure"))
    pod = wait_for_phase(core, "again", "Succeeded")
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1 and status.last_state.terminated.exit_code == 1
    assert core.read_namespaced_pod_log("again", "default") == "second\n"
    assert core.read_namespaced_pod_log("again", "default", previous=True) == "first\n"
    delete_and_wait(core, kube_cluster, "again")


def test_init_containers_run_first_and_a_failing_one_fails_the_pod(
        core: client.CoreV1Api, kube_cluster: KubeCluster, tmp_path: Path) -> None:
    order = tmp_path / "order"
    append = f"import sys; open({str(order)!r}, 'a').write(sys.argv[1] + ' ')"
    init = [{"name": "prepare", "image": "python:3.12", "command": [PYTHON, "-c", append],
             "args": ["init"]}]
    core.create_namespaced_pod("default", pod_manifest(
        "ordered", None, initContainers=init,
        container={"command": [PYTHON, "-c", append], "args": ["main"]}))
    pod = wait_for_phase(core, "ordered", "Succeeded")
    assert order.read_text() == "init main "
    assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
    broken = [{"name": "prepare", "image": "python:3.12",
               "command": [PYTHON, "-c", "raise SystemExit(4)"]}]
    core.create_namespaced_pod("default", pod_manifest("broken-init", "print('never')",
                                                       initContainers=broken))
    pod = wait_for_phase(core, "broken-init", "Failed")
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 4
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    delete_and_wait(core, kube_cluster, "ordered", "broken-init")


def test_active_deadline_seconds_fails_the_pod_with_deadline_exceeded(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_pod("default", pod_manifest("late", "import time; time.sleep(60)",
                                                       activeDeadlineSeconds=1))
    pod = wait_for_phase(core, "late", "Failed")
    assert pod.status.reason == "DeadlineExceeded"
    delete_and_wait(core, kube_cluster, "late")


def test_a_missing_secret_holds_the_container_until_it_exists(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    core.create_namespaced_pod("default", pod_manifest(
        "patient", "import os; print(os.environ['TOKEN'])", container={"env": env}))

    def config_error() -> str | None:
        statuses = core.read_namespaced_pod("patient", "default").status.container_statuses
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.message if waiting and waiting.reason == "CreateContainerConfigError" \
            else None

    assert wait_for(config_error, what="CreateContainerConfigError") == \
        'secret "later" not found'
    core.create_namespaced_secret("default", {"metadata": {"name": "later"},
                                              "data": {"token": "czNjcmV0"}})
    wait_for_phase(core, "patient", "Succeeded")
    assert core.read_namespaced_pod_log("patient", "default") == "s3cret\n"
    delete_and_wait(core, kube_cluster, "patient")


def test_patches_merge_labels_as_the_client_sends_them(core: client.CoreV1Api,
                                                       kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    core.create_namespaced_pod("default", pod_manifest("patched", "pass",
                                                       labels={"keep": "1", "drop": "1"}))
    core.patch_namespaced_pod("patched", "default",
                              {"metadata": {"labels": {"drop": None, "new": "2"}}})
    core.patch_namespaced_pod("patched", "default", [
        {"op": "add", "path": "/metadata/annotations", "value": {"note": "json-patch"}}])
    pod = core.read_namespaced_pod("patched", "default")
    assert pod.metadata.labels == {"keep": "1", "new": "2"}
    assert pod.metadata.annotations == {"note": "json-patch"}
    with pytest.raises(ApiException) as forbidden:
        core.patch_namespaced_pod("patched", "default", {"spec": {"restartPolicy": "Always"}})
    assert forbidden.value.status == 422 and "pod updates may not change" in forbidden.value.body
    delete_and_wait(core, kube_cluster, "patched")


def test_lists_page_with_limit_and_continue_and_collections_delete_by_selector(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    for index in range(5):
        core.create_namespaced_pod("default", pod_manifest(f"page-{index}", "pass",
                                                           labels={"batch": "x"}))
    first = core.list_namespaced_pod("default", limit=2)
    assert len(first.items) == 2 and first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_pod("default", limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items + rest.items] == [
        f"page-{index}" for index in range(5)]
    core.delete_collection_namespaced_pod("default", label_selector="batch=x")
    kube_cluster.wait_for_no_pods(5)


def test_nodes_register_ready_and_holding_scheduling_cordons_them(
        kube_cluster: KubeCluster, core: client.CoreV1Api) -> None:
    node = core.read_node("flow-node-0")
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.node_info.kubelet_version.startswith("v1.")
    kube_cluster.hold_scheduling()
    assert core.read_node("flow-node-0").spec.unschedulable is True
    kube_cluster.hold_scheduling(False)
    assert not core.read_node("flow-node-0").spec.unschedulable


def test_a_multi_container_pods_log_needs_the_container_name(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    side = {"name": "side", "image": "python:3.12", "command": [PYTHON, "-c", "print('side')"]}
    manifest = pod_manifest("pair", "print('main')")
    manifest["spec"]["containers"].append(side)
    kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
    core.create_namespaced_pod("default", manifest)
    wait_for_phase(core, "pair", "Succeeded")
    with pytest.raises(ApiException) as ambiguous:
        core.read_namespaced_pod_log("pair", "default")
    assert ambiguous.value.status == 400 and "choose one of: [main side]" in ambiguous.value.body
    assert core.read_namespaced_pod_log("pair", "default", container="side") == "side\n"
    delete_and_wait(core, kube_cluster, "pair")


def test_namespaces_come_with_use_and_take_their_objects_when_deleted(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    core.create_namespaced_config_map("team", {"metadata": {"name": "settings"},
                                               "data": {"a": "1"}})
    assert core.read_namespace("team").status.phase == "Active"
    dry = core.create_namespaced_pod("team", pod_manifest("dry", "pass"), dry_run="All")
    assert dry.metadata.uid and kube_cluster.pods("team") == []
    stubborn = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "time.sleep(60)")
    core.create_namespaced_pod("team", pod_manifest("worker", stubborn,
                                                    terminationGracePeriodSeconds=2))
    wait_for(lambda: core.read_namespaced_pod("worker", "team").status.phase == "Running",
             what="the pod to run")
    core.delete_namespace("team")
    assert core.read_namespace("team").status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    assert refused.value.status == 403 and "being terminated" in refused.value.body
    kube_cluster.wait_for_no_pods(10)
    assert [ns.metadata.name for ns in core.list_namespace().items] == ["default"]
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("settings", "team")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as protected:
        core.delete_namespace("default")
    assert protected.value.status == 403


def test_forty_pods_at_once_each_finish_once_in_one_watch(core: client.CoreV1Api,
                                                           kube_cluster: KubeCluster) -> None:
    start = core.list_namespaced_pod("default").metadata.resource_version
    names = {f"many-{index}" for index in range(40)}
    for name in sorted(names):
        core.create_namespaced_pod("default", pod_manifest(
            name, "import sys; print(sys.argv[1])", labels={"load": "yes"},
            container={"args": [name]}))
    finished: dict[str, str] = {}
    versions: list[int] = []
    for event in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=60,
                                      label_selector="load=yes", resource_version=start):
        pod = event["object"]
        versions.append(int(pod.metadata.resource_version))
        if pod.status.phase in ("Succeeded", "Failed"):
            assert pod.metadata.name not in finished, "a finished pod finished again"
            finished[pod.metadata.name] = pod.status.phase
        if len(finished) == len(names):
            break
    assert finished == dict.fromkeys(names, "Succeeded")
    assert versions == sorted(set(versions))
    assert core.read_namespaced_pod_log("many-7", "default") == "many-7\n"
    core.delete_collection_namespaced_pod("default", label_selector="load=yes")
    kube_cluster.wait_for_no_pods(10)


def test_stopping_a_cluster_kills_the_processes_of_its_pods(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
              "time.sleep(60)")
    with KubeCluster(tmp_path / "cluster", nodes=2, env={"FROM_CLUSTER": "yes"}) as cluster:
        with cluster.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            assert sorted(n.metadata.name for n in core.list_node().items) == [
                "flow-node-0", "flow-node-1"]
            core.create_namespaced_pod("default", pod_manifest(
                "on-one", "import os; print(os.environ['FROM_CLUSTER'])",
                nodeSelector={"kubernetes.io/hostname": "flow-node-1"}))
            core.create_namespaced_pod("default", pod_manifest("left-running", script))
            done = wait_for_phase(core, "on-one", "Succeeded")
            assert done.spec.node_name == "flow-node-1"
            assert core.read_namespaced_pod_log("on-one", "default") == "yes\n"
            wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the process")
    assert not _alive(int(pid_file.read_text()))


def test_every_object_the_server_holds_passes_the_official_schema(
        core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    """The server completes objects the way the real one does: what it stores for pods in
    every phase, nodes, namespaces, jobs, secrets and config maps is valid, strictly."""
    core.create_namespaced_secret("default", {"metadata": {"name": "s"},
                                              "stringData": {"k": "v"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    core.create_namespaced_pod("default", pod_manifest("ok", "pass"))
    core.create_namespaced_pod("default", pod_manifest("bad", "raise SystemExit(1)", container={
        "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}))
    core.create_namespaced_pod("default", pod_manifest("pull", "pass", image="does-not-exist"))
    client.BatchV1Api(kube_cluster.api_client()).create_namespaced_job("default", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "python:3.12", "command": [PYTHON, "-c", "pass"]}]}}}})
    wait_for_phase(core, "ok", "Succeeded")
    wait_for_phase(core, "bad", "Failed")
    wait_for(lambda: core.list_namespaced_pod(
        "default", label_selector="job-name=job", field_selector="status.phase=Succeeded").items,
        what="the job's pod to succeed")
    kube_cluster.hold_scheduling()
    core.create_namespaced_pod("default", pod_manifest("held", "pass"))
    wait_for(lambda: core.read_namespaced_pod("held", "default").status.conditions,
             what="the Unschedulable condition")
    checked = 0
    for path, api_version, kind in (
            ("/api/v1/pods", "v1", "Pod"), ("/api/v1/nodes", "v1", "Node"),
            ("/api/v1/namespaces", "v1", "Namespace"), ("/api/v1/secrets", "v1", "Secret"),
            ("/api/v1/configmaps", "v1", "ConfigMap"), ("/apis/batch/v1/jobs", "batch/v1", "Job")):
        for item in kube_cluster.request("GET", path)["items"]:
            kubernetes_validate.validate({"apiVersion": api_version, "kind": kind, **item},
                                         SCHEMA_VERSION, strict=True)
            checked += 1
    assert checked == 5 + 1 + 1 + 1 + 1 + 1  # pods, node, namespace, secret, map, job
    core.delete_collection_namespaced_pod("default")
    kube_cluster.wait_for_no_pods(10)


def test_a_pod_left_behind_is_named_by_the_leftover_check(core: client.CoreV1Api,
                                                         kube_cluster: KubeCluster) -> None:
    kube_cluster.hold_scheduling()
    core.create_namespaced_pod("default", pod_manifest("forgotten", "pass",
                                                       labels={"task": "t1"}))
    with pytest.raises(AssertionError, match=r"1 pod\(s\) left .*default/forgotten .*Pending"):
        kube_cluster.wait_for_no_pods(0.5)
    with pytest.raises(KubeClusterError, match="default/forgotten has no running container"):
        kube_cluster.kill_container("default", "forgotten")
    delete_and_wait(core, kube_cluster, "forgotten")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
