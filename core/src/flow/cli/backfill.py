"""``flow backfill``: run a DAG over a range of past logical dates, inside the scheduler."""

from __future__ import annotations

from typing import Any

import click

from flow.cli.output import echo_rows, output_option


def _engine() -> Any:
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    engine = get_engine()
    ensure_current(engine)
    return engine


@click.group()
def backfill() -> None:
    """Run a DAG over a range of past dates."""


@backfill.command("create")
@click.argument("dag_id")
@click.option("--from", "from_text", required=True, help="First logical date (ISO 8601).")
@click.option("--to", "to_text", required=True, help="Last logical date (ISO 8601).")
@click.option("--reprocess", type=click.Choice(["none", "failed", "all"]), default="none",
              show_default=True, help="What to do with dates that already have a run.")
@click.option("--max-active-runs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--conf", "conf_text", metavar="JSON", help="conf of every run.")
@click.option("--dry-run", is_flag=True, help="List the runs it would create; create nothing.")
@output_option
def create(dag_id: str, from_text: str, to_text: str, reprocess: str, max_active_runs: int,
           conf_text: str | None, dry_run: bool, output: str) -> None:
    """Create a backfill of DAG_ID; a running `flow scheduler` works it off."""
    from flow.cli.dags import parse_conf, parse_logical_date, process_dags_folder
    from flow.scheduling.backfill import BackfillError, create_backfill
    from flow.store.event_log import os_user

    start, end = parse_logical_date(from_text), parse_logical_date(to_text)
    assert start is not None and end is not None
    process_dags_folder()
    try:
        row, planned = create_backfill(_engine(), dag_id, start, end, reprocess=reprocess,
                                       max_active_runs=max_active_runs,
                                       conf=parse_conf(conf_text), dry_run=dry_run,
                                       actor=os_user())
    except BackfillError as err:
        raise click.ClickException(str(err)) from None
    rows = [{"logical_date": p.logical_date, "data_interval_end": p.data_interval_end,
             "existing_run": p.existing_state or "", "action": p.action} for p in planned]
    echo_rows(rows, output)
    if output == "table":
        runs = sum(1 for p in planned if p.action != "skip")
        if row is None:
            click.echo(f"dry run: {runs} run(s) of {dag_id} would be created or re-run")
        else:
            click.echo(f"backfill {row.id} of {dag_id}: {runs} run(s); the scheduler runs "
                       "them; see `flow backfill list`")


@backfill.command("list")
@output_option
def list_(output: str) -> None:
    """List backfills with their progress."""
    from flow.scheduling.backfill import progress

    rows = progress(_engine())
    if output == "table":
        for row in rows:
            row["progress"] = f"{row['success'] + row['failed']}/{row['total']}"
        echo_rows(rows, output, ["id", "dag_id", "from", "to", "reprocess", "state",
                                 "progress", "success", "failed", "active"])
    else:
        echo_rows(rows, output)


@backfill.command("cancel")
@click.argument("backfill_id", type=int)
def cancel(backfill_id: int) -> None:
    """Cancel backfill BACKFILL_ID: no more runs are created; its queued runs are failed."""
    from flow.scheduling.backfill import BackfillError, cancel_backfill
    from flow.store.event_log import os_user

    try:
        cancel_backfill(_engine(), backfill_id, actor=os_user())
    except BackfillError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"backfill {backfill_id} cancelled")
