"""``flow tasks``: list tasks, test one task, and run one workload (what executors call)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from flow.cli.output import echo_rows, output_option

# Exit codes of `flow tasks run`: executors read the outcome from the last line of stdout
# (a JSON object); the exit code says the same for callers that only look at that.
EXIT_OK, EXIT_TASK_FAILED, EXIT_REFUSED, EXIT_NOT_FOUND = 0, 1, 3, 4


@click.group()
def tasks() -> None:
    """List, test and run tasks."""


def tree_lines(dag: Any) -> list[str]:
    """Each task under its upstream tasks, from the roots down (a task may appear twice)."""
    lines: list[str] = []

    def walk(task_id: str, depth: int) -> None:
        task = dag.get_task(task_id)
        lines.append(f"{'    ' * depth}{task.task_id} ({task.task_type})")
        for child in sorted(task.downstream_task_ids):
            walk(child, depth + 1)

    for task in dag.topological_sort():
        if not task.upstream_task_ids:
            walk(task.task_id, 0)
    return lines


@tasks.command("list")
@click.argument("dag_id")
@click.option("--tree", is_flag=True, help="Show the tasks as a tree of dependencies.")
@output_option
def list_tasks(dag_id: str, tree: bool, output: str) -> None:
    """List the tasks of DAG_ID in dependency order."""
    from flow.cli.dags import load_serialized

    dag = load_serialized(dag_id)
    if tree:
        click.echo("\n".join(tree_lines(dag)))
        return
    echo_rows(task_rows(dag), output)


def task_rows(dag: Any) -> list[dict[str, Any]]:
    return [{"task_id": t.task_id, "operator": t.task_type, "trigger_rule": str(t.trigger_rule),
             "upstream": sorted(t.upstream_task_ids),
             "mapped": bool(getattr(t, "is_mapped", False))}
            for t in dag.topological_sort()]


def test_one_task(dag: Any, task_id: str, logical_date: Any, map_index: int) -> None:
    from flow.execution.dag_test import run_task_test

    if task_id not in dag.task_dict:
        raise click.ClickException(f"DAG {dag.dag_id!r} has no task {task_id!r}; tasks: "
                                   f"{', '.join(sorted(dag.task_dict))}")
    try:
        result = run_task_test(dag, task_id, logical_date, map_index=map_index,
                               echo=sys.stdout)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{task_id}: {result.state} (log: {result.log_path})")
    sys.exit(EXIT_OK if result.ok else EXIT_TASK_FAILED)


@tasks.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date", required=False)
@click.option("--map-index", type=int, default=-1, show_default=True,
              help="The map index to run, for a mapped task.")
def test(dag_id: str, task_id: str, logical_date: str | None, map_index: int) -> None:
    """Run TASK_ID of DAG_ID once in this process, ignoring its dependencies; its log goes to
    stdout (and to its log file)."""
    from flow.cli.dags import load_dag, parse_logical_date

    test_one_task(load_dag(dag_id), task_id, parse_logical_date(logical_date), map_index)


@tasks.command("run")
@click.option("--workload", "workload_text", required=True, metavar="JSON",
              help="The TaskWorkload document an executor received.")
def run(workload_text: str) -> None:
    """Run one queued try of a task instance: the entry point of every executor's workers.

    Loads the DAG file the workload names, checks that the task instance is queued for that
    try (a late or duplicate start is refused), runs it and prints the outcome as JSON.
    """
    from flow.execution.workload import TaskWorkload, WorkloadError

    try:
        workload = TaskWorkload.from_json(workload_text)
    except WorkloadError as err:
        raise click.BadParameter(str(err), param_hint="--workload") from None
    code, outcome = run_workload(workload)
    click.echo(json.dumps(outcome, sort_keys=True))
    sys.exit(code)


def run_workload(workload: Any) -> tuple[int, dict[str, Any]]:
    """Run ``workload`` in a supervised child process (see :mod:`flow.execution.entrypoint`)
    and wait for it: the exit code of ``flow tasks run`` and the outcome it prints."""
    from flow.execution.entrypoint import run_workload as run_one

    outcome = run_one(workload)
    state = outcome["state"]
    if outcome.get("not_found"):
        return EXIT_NOT_FOUND, outcome
    if state == "refused":
        return EXIT_REFUSED, outcome
    return (EXIT_OK if state in {"success", "skipped"} else EXIT_TASK_FAILED), outcome


TI_COLUMNS = ["task_id", "map_index", "state", "try_number"]


def _ti_rows(tis: Any) -> list[dict[str, Any]]:
    return [{"task_id": ti.task_id, "map_index": ti.map_index, "state": ti.state,
             "try_number": ti.try_number} for ti in tis]


@tasks.command("clear")
@click.argument("dag_id")
@click.argument("run_id")
@click.option("-t", "--task-id", "task_ids", multiple=True,
              help="A task to clear (repeat for more; default: every task of the run).")
@click.option("--downstream", is_flag=True, help="Also clear what depends on them.")
@click.option("--upstream", is_flag=True, help="Also clear what they depend on.")
@click.option("--only-failed", is_flag=True, help="Only failed and upstream_failed ones.")
@click.option("--dry-run", is_flag=True, help="List what would be cleared; change nothing.")
@output_option
def clear(dag_id: str, run_id: str, task_ids: tuple[str, ...], downstream: bool,
          upstream: bool, only_failed: bool, dry_run: bool, output: str) -> None:
    """Clear task instances of RUN_ID of DAG_ID: the scheduler runs them again (a new try)."""
    from flow.scheduling.actions import ActionError, clear_task_instances
    from flow.store.event_log import os_user

    try:
        cleared = clear_task_instances(dag_id, run_id, list(task_ids) or None,
                                       downstream=downstream, upstream=upstream,
                                       only_failed=only_failed, dry_run=dry_run,
                                       actor=os_user(), source="cli")
    except ActionError as err:
        raise click.ClickException(str(err)) from None
    if output == "table":
        verb = "would clear" if dry_run else "cleared"
        click.echo(f"{verb} {len(cleared)} task instance(s) of {dag_id} run {run_id}")
    echo_rows(_ti_rows(cleared), output, columns=TI_COLUMNS)


@tasks.command("mark")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option("--state", type=click.Choice(["success", "failed"]), required=True)
@click.option("--map-index", type=int, default=-1, show_default=True)
@output_option
def mark(dag_id: str, run_id: str, task_id: str, state: str, map_index: int,
         output: str) -> None:
    """Mark TASK_ID of RUN_ID success or failed; its downstream tasks follow from it."""
    from flow.scheduling.actions import ActionError, set_task_instance_state
    from flow.store.event_log import os_user

    try:
        ti = set_task_instance_state(dag_id, run_id, task_id, state, map_index=map_index,
                                     actor=os_user(), source="cli")
    except ActionError as err:
        raise click.ClickException(str(err)) from None
    echo_rows(_ti_rows([ti]), output, columns=TI_COLUMNS)


@tasks.command("states-for-run")
@click.argument("dag_id")
@click.argument("run_id")
@output_option
def states_for_run(dag_id: str, run_id: str, output: str) -> None:
    """The state of every task instance of RUN_ID of DAG_ID."""
    echo_rows(states_rows(dag_id, run_id), output)


def states_rows(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from flow.store.models import DagRun, TaskInstance
    from flow.store.session import session_scope

    with session_scope() as session:
        if session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id,
                                                  DagRun.run_id == run_id)) is None:
            raise click.ClickException(f"DAG {dag_id!r} has no run {run_id!r}; see "
                                       f"`flow dags list-runs {dag_id}`")
        rows = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)).all()
        return [{"task_id": row.task_id, "map_index": row.map_index, "state": row.state,
                 "try_number": row.try_number, "start_date": row.start_date,
                 "end_date": row.end_date, "duration": row.duration,
                 "hostname": row.hostname or None, "pid": row.pid} for row in rows]
