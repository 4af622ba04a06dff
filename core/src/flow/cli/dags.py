"""``flow dags``: list, inspect and test DAGs.

``list``, ``list-import-errors``, ``show`` and ``details`` parse the DAG folder first (only files
that changed are parsed again) and then read the metadata database, never the DAG objects:
what they print is what the scheduler and the web server see. ``test`` imports the DAG's file in
this process and runs one whole DAG run with :func:`flow.execution.dag_test.run_dag_test`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from flow.cli.output import echo_rows, output_option


def engine() -> Any:
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    current = get_engine()
    ensure_current(current)
    return current


def process_dags_folder() -> Any:
    """Parse what changed in the DAG folder into the database; the processing result."""
    from flow.scheduling.processor import DagProcessor

    return DagProcessor(engine=engine()).process()


def load_serialized(dag_id: str) -> Any:
    """The stored DAG ``dag_id`` (after parsing the folder), or a usage error saying why not."""
    from flow.scheduling.serialization import SerializedDag
    from flow.store.models import SerializedDagModel
    from flow.store.session import session_scope

    process_dags_folder()
    with session_scope(engine()) as session:
        row = session.get(SerializedDagModel, dag_id)
        data = row.data if row is not None else None
    if data is None:
        raise click.ClickException(_not_found(dag_id))
    return SerializedDag.from_dict(data)


def load_dag(dag_id: str) -> Any:
    """The live DAG ``dag_id``, imported from its file in this process (for running it)."""
    from flow.scheduling.dagbag import load_dag_file
    from flow.store.models import DagModel
    from flow.store.session import session_scope

    process_dags_folder()
    with session_scope(engine()) as session:
        row = session.get(DagModel, dag_id)
        fileloc = row.fileloc if row is not None and row.is_active else None
    if fileloc is None:
        raise click.ClickException(_not_found(dag_id))
    loaded = load_dag_file(fileloc, _dags_folder())
    for dag in loaded.dags:
        if dag.dag_id == dag_id:
            return dag
    problems = "; ".join(str(error) for error in loaded.errors) or "it is no longer defined there"
    raise click.ClickException(f"DAG {dag_id!r} could not be loaded from {fileloc}: {problems}")


def _dags_folder() -> str:
    from flow.config import load_config

    return str(load_config().get("core", "dags_folder"))


def _not_found(dag_id: str) -> str:
    return (f"no DAG {dag_id!r} in the DAG folder {_dags_folder()}; see `flow dags list` and "
            "`flow dags list-import-errors`")


def parse_logical_date(text: str | None) -> datetime | None:
    from flow.utils.timezone import parse_datetime

    if text is None:
        return None
    try:
        return parse_datetime(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="LOGICAL_DATE") from None


def parse_conf(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not JSON: {err}", param_hint="--conf") from None
    if not isinstance(conf, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--conf")
    return conf


# ------------------------------------------------------------------------- shared rendering


def graph_lines(dag: Any) -> list[str]:
    """A text picture of the DAG: each task in dependency order with its downstream tasks."""
    lines = [f"{dag.dag_id}"]
    for task in dag.topological_sort():
        mapped = " [mapped]" if getattr(task, "is_mapped", False) else ""
        lines.append(f"  {task.task_id} ({task.task_type}){mapped}")
        for child in sorted(task.downstream_task_ids):
            lines.append(f"    └─> {child}")
    return lines


def graph_dot(dag: Any) -> str:
    lines = [f"digraph {json.dumps(dag.dag_id)} {{", "  rankdir=LR;"]
    for task in dag.topological_sort():
        label = f"{task.task_id}\\n({task.task_type})"
        lines.append(f"  {json.dumps(task.task_id)} [shape=box, label=\"{label}\"];")
    for task in dag.topological_sort():
        for child in sorted(task.downstream_task_ids):
            lines.append(f"  {json.dumps(task.task_id)} -> {json.dumps(child)};")
    lines.append("}")
    return "\n".join(lines)


def echo_test_result(result: Any, output: str = "table") -> None:
    rows = [{"task_id": t.task_id, "map_index": t.map_index if t.map_index >= 0 else "",
             "state": t.state or "none", "try": t.try_number,
             "duration_s": f"{t.duration:.2f}" if t.duration is not None else ""}
            for t in result.tasks]
    echo_rows(rows, output)
    if output == "table":
        for note in result.notes:
            click.echo(f"note: {note}")
        click.echo(f"DAG run {result.run_id} of {result.dag_id}: {result.state} "
                   f"in {result.duration:.2f} s")


def run_test(dag: Any, logical_date: datetime | None, conf: dict[str, Any] | None,
             wait_for_retries: bool = True, show_logs: bool = False) -> Any:
    from flow.exceptions import ParamValidationError
    from flow.execution.dag_test import run_dag_test

    try:
        dag.validate()
        return run_dag_test(dag, logical_date, conf, wait_for_retries=wait_for_retries,
                            echo=sys.stdout if show_logs else None)
    except ParamValidationError as err:
        raise click.ClickException(f"the run's conf was refused: {err}") from None


# ---------------------------------------------------------------------------------- commands


@click.group()
def dags() -> None:
    """List, inspect and test DAGs."""


@dags.command("list")
@output_option
def list_dags(output: str) -> None:
    """Parse the DAG folder and list its DAGs."""
    from sqlalchemy import select

    from flow.store.models import DagModel
    from flow.store.session import session_scope

    process_dags_folder()
    with session_scope(engine()) as session:
        rows = session.scalars(select(DagModel).where(DagModel.is_active.is_(True))
                               .order_by(DagModel.dag_id)).all()
        listed = [{"dag_id": row.dag_id, "fileloc": _relative(row.fileloc),
                   "owners": row.owners, "is_paused": row.is_paused, "tags": row.tags,
                   "schedule": row.schedule_description} for row in rows]
    echo_rows(listed, output, ["dag_id", "fileloc", "owners", "is_paused", "tags", "schedule"])


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path(_dags_folder()).resolve()))
    except ValueError:
        return path


@dags.command("list-import-errors")
@output_option
def list_import_errors(output: str) -> None:
    """Parse the DAG folder and list the files that failed to load, with file and line."""
    from sqlalchemy import select

    from flow.store.models import ImportError_
    from flow.store.session import session_scope

    process_dags_folder()
    with session_scope(engine()) as session:
        rows = session.scalars(select(ImportError_).order_by(ImportError_.filename)).all()
        listed = [{"filename": row.filename, "lineno": row.lineno, "message": row.message,
                   "stacktrace": row.stacktrace} for row in rows]
    if output == "table":
        echo_rows(listed, output, ["filename", "lineno", "message"])
    else:
        echo_rows(listed, output)


@dags.command("show")
@click.argument("dag_id")
@click.option("--dot", is_flag=True, help="Print the graph in Graphviz dot format.")
def show(dag_id: str, dot: bool) -> None:
    """Show the tasks of DAG_ID and their dependencies."""
    dag = load_serialized(dag_id)
    click.echo(graph_dot(dag) if dot else "\n".join(graph_lines(dag)))


@dags.command("details")
@click.argument("dag_id")
@output_option
def details(dag_id: str, output: str) -> None:
    """Show the attributes of DAG_ID as stored by the DAG processor."""
    from flow.store.models import DagModel
    from flow.store.session import session_scope

    dag = load_serialized(dag_id)
    with session_scope(engine()) as session:
        row = session.get(DagModel, dag_id)
        state = {"is_paused": row.is_paused, "is_active": row.is_active,
                 "dag_hash": row.dag_hash, "last_parsed_at": row.last_parsed_at} if row else {}
    data = dag.data
    fields = {"dag_id": dag.dag_id, "fileloc": dag.fileloc, "description": data["description"],
              "owner": data["owner"], "tags": data["tags"],
              "schedule": data["schedule_summary"], "timetable": data["timetable"]["type_name"],
              "start_date": data["start_date"], "end_date": data["end_date"],
              "catchup": data["catchup"], "max_active_runs": data["max_active_runs"],
              "max_active_tasks": data["max_active_tasks"], "timezone": data["timezone"],
              "params": data["params"], "tasks": len(dag.task_dict), **state}
    if output == "table":
        echo_rows([{"property": k, "value": v} for k, v in fields.items()], output)
    else:
        echo_rows([fields], output)


@dags.command("test")
@click.argument("dag_id", required=False)
@click.argument("logical_date", required=False)
@click.option("--conf", "conf_text", metavar="JSON", help="The run's conf (checked against the "
                                                          "DAG's params).")
@click.option("--all", "run_all", is_flag=True, help="Test every DAG in the DAG folder.")
@click.option("--no-wait-retries", is_flag=True,
              help="Retry failed tasks at once instead of waiting out their retry delay.")
@click.option("--show-logs", is_flag=True, help="Also print each task's log.")
@output_option
def test(dag_id: str | None, logical_date: str | None, conf_text: str | None, run_all: bool,
         no_wait_retries: bool, show_logs: bool, output: str) -> None:
    """Run one DAG run of DAG_ID in this process (or of every DAG with --all).

    Writes real dag_run, task_instance and XCom rows and task logs, honours trigger rules,
    branches, retries and mapping, and prints each task's state and duration. Exits non-zero
    when a run failed.
    """
    when, conf = parse_logical_date(logical_date), parse_conf(conf_text)
    if run_all == bool(dag_id):
        raise click.UsageError("give a DAG_ID or --all")
    if not run_all:
        assert dag_id is not None
        result = run_test(load_dag(dag_id), when, conf, not no_wait_retries, show_logs)
        echo_test_result(result, output)
        sys.exit(0 if result.ok else 1)
    _test_all(when, conf, not no_wait_retries, show_logs, output)


def _test_all(when: datetime | None, conf: dict[str, Any] | None, wait: bool, show_logs: bool,
              output: str) -> None:
    from sqlalchemy import select

    from flow.store.models import DagModel
    from flow.store.session import session_scope

    processed = process_dags_folder()
    with session_scope(engine()) as session:
        dag_ids = list(session.scalars(select(DagModel.dag_id).where(
            DagModel.is_active.is_(True)).order_by(DagModel.dag_id)))
    failed: list[str] = []
    summary: list[dict[str, Any]] = []
    for dag_id in dag_ids:
        result = run_test(load_dag(dag_id), when, conf, wait, show_logs)
        if output == "table":
            click.echo(f"\n== {dag_id}")
            echo_test_result(result, output)
        summary.append({"dag_id": dag_id, "state": result.state, "run_id": result.run_id,
                        "tasks": _states_count(t.state for t in result.tasks),
                        "duration_s": round(result.duration, 2)})
        if not result.ok:
            failed.append(dag_id)
    errors = _import_error_count()
    if output == "table":
        click.echo("\n== summary")
    echo_rows(summary, output)
    if errors:
        click.echo(f"{errors} DAG file(s) failed to import: see `flow dags list-import-errors`",
                   err=True)
    if not processed.files:
        click.echo(f"no DAG files in {_dags_folder()}", err=True)
    if failed or errors or not processed.files:
        if failed:
            click.echo(f"failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def _states_count(states: Iterable[str | None]) -> str:
    counts: dict[str, int] = {}
    for state in states:
        counts[state or "none"] = counts.get(state or "none", 0) + 1
    return ", ".join(f"{state}={n}" for state, n in sorted(counts.items()))


def _import_error_count() -> int:
    from sqlalchemy import func, select

    from flow.store.models import ImportError_
    from flow.store.session import session_scope

    with session_scope(engine()) as session:
        return int(session.scalar(select(func.count()).select_from(ImportError_)) or 0)


# ------------------------------------------------------------------------ runs and pausing


def _action_error(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


@dags.command("trigger")
@click.argument("dag_id")
@click.option("--conf", "conf_text", metavar="JSON", help="The run's conf (checked against the "
                                                          "DAG's params).")
@click.option("--run-id", default=None, help="The run's id (default: manual__<logical date>).")
@click.option("--logical-date", default=None, help="The run's logical date (default: now).")
@output_option
def trigger(dag_id: str, conf_text: str | None, run_id: str | None, logical_date: str | None,
            output: str) -> None:
    """Create a run of DAG_ID; the scheduler starts it (even while the DAG is paused, it waits
    for `flow dags unpause`)."""
    from flow.scheduling.actions import ActionError, trigger_dag_run
    from flow.store.event_log import os_user

    conf = parse_conf(conf_text)
    when = parse_logical_date(logical_date)
    process_dags_folder()
    try:
        run = trigger_dag_run(dag_id, run_id=run_id, logical_date=when, conf=conf,
                              actor=os_user(), source="cli")
    except ActionError as err:
        raise _action_error(err) from None
    echo_rows([_run_row(run)], output)


def _set_paused(dag_id: str, paused: bool) -> None:
    from flow.scheduling.actions import ActionError, set_paused
    from flow.store.event_log import os_user

    process_dags_folder()
    try:
        set_paused(dag_id, paused, actor=os_user(), source="cli")
    except ActionError as err:
        raise _action_error(err) from None
    click.echo(f"DAG {dag_id} is {'paused' if paused else 'unpaused'}")


@dags.command("pause")
@click.argument("dag_id")
def pause(dag_id: str) -> None:
    """Pause DAG_ID: no new runs are created and none of its tasks is queued."""
    _set_paused(dag_id, True)


@dags.command("unpause")
@click.argument("dag_id")
def unpause(dag_id: str) -> None:
    """Unpause DAG_ID: the scheduler creates its due runs and runs its tasks."""
    _set_paused(dag_id, False)


@dags.command("mark-run")
@click.argument("dag_id")
@click.argument("run_id")
@click.option("--state", type=click.Choice(["success", "failed", "queued"]), required=True,
              help="success: its unfinished tasks succeed; failed: running and queued tasks "
                   "fail, the others are skipped; queued: the scheduler looks at it again.")
@output_option
def mark_run(dag_id: str, run_id: str, state: str, output: str) -> None:
    """Set the state of RUN_ID of DAG_ID."""
    from flow.scheduling.actions import ActionError, set_dag_run_state
    from flow.store.event_log import os_user

    try:
        run = set_dag_run_state(dag_id, run_id, state, actor=os_user(), source="cli")
    except ActionError as err:
        raise _action_error(err) from None
    echo_rows([_run_row(run)], output, columns=RUN_COLUMNS)


RUN_COLUMNS = ["dag_id", "run_id", "state", "run_type", "logical_date", "start_date",
               "end_date"]


def _run_row(run: Any) -> dict[str, Any]:
    return {"dag_id": run.dag_id, "run_id": run.run_id, "state": run.state,
            "run_type": run.run_type, "logical_date": run.logical_date,
            "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end, "start_date": run.start_date,
            "end_date": run.end_date, "conf": run.conf, "backfill_id": run.backfill_id}


@dags.command("list-runs")
@click.argument("dag_id")
@click.option("--state", default=None, help="Only runs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@output_option
def list_runs(dag_id: str, state: str | None, limit: int, output: str) -> None:
    """List the runs of DAG_ID, newest first."""
    from sqlalchemy import select

    from flow.store.models import DagModel, DagRun
    from flow.store.session import session_scope

    with session_scope(engine()) as session:
        if session.get(DagModel, dag_id) is None:
            raise click.ClickException(_not_found(dag_id))
        query = select(DagRun).where(DagRun.dag_id == dag_id)
        if state:
            query = query.where(DagRun.state == state)
        runs = session.scalars(query.order_by(DagRun.logical_date.desc()).limit(limit)).all()
        rows = [_run_row(run) for run in runs]
    echo_rows(rows, output, RUN_COLUMNS if output == "table" else None)


@dags.command("state")
@click.argument("dag_id")
@click.argument("run_id")
def state(dag_id: str, run_id: str) -> None:
    """Print the state of run RUN_ID of DAG_ID."""
    from sqlalchemy import select

    from flow.store.models import DagRun
    from flow.store.session import session_scope

    with session_scope(engine()) as session:
        value = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id,
                                                          DagRun.run_id == run_id))
    if value is None:
        raise click.ClickException(f"DAG {dag_id!r} has no run {run_id!r}: see "
                                   f"`flow dags list-runs {dag_id}`")
    click.echo(value)
