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
    from flow.execution.task_runner import run_task
    from flow.scheduling.dagbag import load_dag_file

    outcome: dict[str, Any] = {"key": workload.key.to_dict(), "try_number": workload.try_number}
    loaded = load_dag_file(workload.dag_file, _dags_folder())
    dag = next((d for d in loaded.dags if d.dag_id == workload.dag_id), None)
    if dag is None or workload.task_id not in dag.task_dict:
        problems = "; ".join(str(e) for e in loaded.errors)
        what = "DAG" if dag is None else "task"
        outcome.update(state="not_found", message=f"{what} not found in {workload.dag_file}"
                       + (f": {problems}" if problems else ""))
        return EXIT_NOT_FOUND, outcome
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    engine = get_engine()
    ensure_current(engine)
    result = run_task(dag, workload.task_id, workload.run_id, map_index=workload.map_index,
                      try_number=workload.try_number, engine=engine)
    outcome.update(state=result.state, message=result.message, log_path=result.log_path,
                   error=result.error)
    if not result.started:
        outcome["state"] = "refused"
        return EXIT_REFUSED, outcome
    return (EXIT_OK if result.ok else EXIT_TASK_FAILED), outcome


def _dags_folder() -> str:
    from flow.config import load_config

    return str(load_config().get("core", "dags_folder"))
