"""``flow k8s``: show the pod a task would get, and remove pods no try needs any more."""

from __future__ import annotations

import sys
from typing import Any

import click


@click.group()
def k8s() -> None:
    """Kubernetes (flow-k8s): generate-pod, cleanup."""


@k8s.command("generate-pod")
@click.argument("dag_id")
@click.argument("task_id")
@click.option("--run-id", default=None, help="The run the try belongs to (default: a "
                                             "placeholder manual run).")
@click.option("--try-number", type=int, default=1, show_default=True)
@click.option("--map-index", type=int, default=-1, show_default=True)
def generate_pod(dag_id: str, task_id: str, run_id: str | None, try_number: int,
                 map_index: int) -> None:
    """Print, as YAML, the pod the KubernetesExecutor would make for TASK_ID of DAG_ID: the
    pod template merged with the task's executor_config. Talks to no cluster."""
    import yaml

    from flow.cli.dags import load_serialized
    from flow.execution.workload import TaskWorkload
    from flow_k8s.pod import worker_pod
    from flow_k8s.settings import KubernetesConfigError, KubernetesSettings
    from flow_k8s.tries import serialized_task

    dag = load_serialized(dag_id)
    if task_id not in dag.task_dict:
        raise click.ClickException(f"DAG {dag_id!r} has no task {task_id!r}; tasks: "
                                   f"{', '.join(sorted(dag.task_dict))}")
    task = serialized_task(dag_id, task_id) or {}
    workload = TaskWorkload(dag_id=dag_id, run_id=run_id or "manual__<run id>",
                            task_id=task_id, try_number=try_number, dag_file=str(dag.fileloc),
                            map_index=map_index, dag_hash=_dag_hash(dag_id))
    try:
        settings = KubernetesSettings.load()
        pod = worker_pod(workload, settings, settings.scheduler_id or "<scheduler id>",
                         dict(task.get("executor_config") or {}))
    except KubernetesConfigError as err:
        raise click.ClickException(str(err)) from None
    click.echo(yaml.safe_dump(masked_env(pod), sort_keys=False), nl=False)


def masked_env(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` with the literal env values that are secrets masked: those whose name says so
    (``FLOW__CORE__FERNET_KEY``, ``API_TOKEN``) and the passwords of URLs (a database URL).
    Values taken from a Secret (``valueFrom``, ``envFrom``) name the Secret, not its value."""
    from flow.secrets.masking import MASK, is_sensitive_name, mask_url_password

    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for variable in container.get("env") or []:
            value = variable.get("value")
            if isinstance(value, str) and value:
                variable["value"] = (MASK if is_sensitive_name(str(variable.get("name")))
                                     else mask_url_password(value))
    return pod


@k8s.command()
@click.option("--dry-run", is_flag=True, help="List the pods; delete nothing.")
def cleanup(dry_run: bool) -> None:
    """Delete flow's pods that no try needs: ended pods, and pods whose try is no longer
    queued or running (their scheduler or worker died)."""
    from flow_k8s.client import Pods, api_client, describe_error, namespace_of
    from flow_k8s.executor import delete_orphans
    from flow_k8s.settings import KubernetesConfigError, KubernetesSettings

    try:
        settings = KubernetesSettings.load()
        pods = Pods(api_client(settings), namespace_of(settings), settings.api_retries)
    except KubernetesConfigError as err:
        raise click.ClickException(str(err)) from None
    try:
        names = delete_orphans(pods, finished_too=True, dry_run=dry_run)
    except Exception as err:
        raise click.ClickException(f"cleanup in namespace {pods.namespace} failed: "
                                   f"{describe_error(err)}") from None
    finally:
        pods.client.close()
    verb = "would delete" if dry_run else "deleted"
    for name in names:
        click.echo(f"{verb} pod {name}")
    click.echo(f"{verb} {len(names)} pod(s) in namespace {pods.namespace}", err=True)
    sys.exit(0)


def _dag_hash(dag_id: str) -> Any:
    from flow.store.models import DagModel
    from flow.store.session import get_engine, session_scope

    with session_scope(get_engine()) as session:
        row = session.get(DagModel, dag_id)
        return getattr(row, "dag_hash", None)
