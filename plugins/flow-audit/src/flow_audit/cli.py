"""``flow audit``: verify the chain, prune it, follow it and export it."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import click

CSV_COLUMNS = ("seq", "recorded_at", "kind", "actor", "action", "source", "remote_addr",
               "target", "details", "alg", "prev_hash", "hash")


def parse_moment(value: str, option: str) -> str:
    """``2024-05-01`` or ``2024-05-01T12:00`` (UTC unless it names an offset) as a stored
    timestamp."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or date-time; use e.g. 2024-05-01 "
                                 "or 2024-05-01T12:00:00+00:00", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    from flow_audit.chain import utc_timestamp

    return utc_timestamp(moment)


def os_user() -> str:
    """The operating-system user running the command: the actor of a prune."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no USER variable and no passwd entry (some containers)
        return "unknown"


def _engine() -> Any:
    from flow.plugin_support import metadata_engine

    return metadata_engine()


def _has_tables(engine: Any) -> bool:
    from flow_audit.store import tables_exist

    return tables_exist(engine)


@click.group()
def audit() -> None:
    """The audit trail (flow-audit): verify, prune, tail, export."""


@audit.command()
def verify() -> None:
    """Walk the chain and name the first record that was changed, deleted or moved."""
    from flow_audit import store
    from flow_audit.chain import verify as check
    from flow_audit.recorder import settings

    engine = _engine()
    if not _has_tables(engine):
        click.echo("OK: no audit records yet (the audit tables do not exist)")
        return
    head = store.head(engine)
    verdict = check(store.walk(engine, up_to=head[0] + 1), head, settings().hmac_key)
    if verdict.ok:
        click.echo(f"OK: {verdict.message}")
        return
    click.echo(f"FAILED at record {verdict.bad_seq}: {verdict.message}", err=True)
    sys.exit(1)


@audit.command()
@click.option("--before", required=True, help="Prune records recorded before this date "
                                              "(UTC unless an offset is given).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune(before: str, yes: bool) -> None:
    """Delete the oldest records, leaving an anchor so the rest still verifies."""
    from flow_audit import store
    from flow_audit.recorder import settings

    moment = parse_moment(before, "--before")
    if not yes:
        click.confirm(f"Delete the audit records recorded before {moment}?", abort=True)
    engine = store.writer_engine()
    try:
        count, anchor = store.prune(engine, moment, os_user(), settings().hmac_key)
    finally:
        engine.dispose()
    if anchor is None:
        click.echo(f"nothing to prune: no records before {moment} (besides an anchor)")
    else:
        click.echo(f"pruned {count} records; record {anchor.seq} is now the anchor of the chain")


def _line(record: Any) -> str:
    from flow_audit.chain import canonical_json

    return "\t".join([str(record.seq), record.recorded_at, record.source or "-", record.actor,
                      record.action, record.target, canonical_json(record.details)])


@audit.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records (Ctrl-C ends).")
@click.option("--actor", help="Only this actor's records.")
@click.option("--action", help="Only this action (e.g. connection.update).")
@click.option("--since", help="Only records from this date or date-time on.")
@click.option("-n", "--lines", default=20, show_default=True, help="How many records to show "
                                                                    "first.")
@click.option("--interval", default=1.0, show_default=True, hidden=True)
def tail(follow: bool, actor: str | None, action: str | None, since: str | None, lines: int,
         interval: float) -> None:
    """Print the latest records: seq, time, source, actor, action, target, details."""
    from flow_audit import store

    moment = parse_moment(since, "--since") if since else None
    engine = _engine()
    last = 0
    if _has_tables(engine):
        last = store.head(engine)[0]  # first: what is appended meanwhile comes with --follow
        records = store.query(engine, actor=actor, action=action, since=moment, limit=lines,
                              up_to=last, newest_first=True)
        for record in reversed(records):
            click.echo(_line(record))
    while follow:
        time.sleep(interval)
        if not _has_tables(engine):
            continue
        for record in store.query(engine, actor=actor, action=action, since=moment,
                                  after_seq=last):
            click.echo(_line(record))
            last = record.seq
        sys.stdout.flush()


def _all(engine: Any, **filters: Any) -> Iterator[Any]:
    from flow_audit import store

    after = 0
    while True:
        batch = store.query(engine, after_seq=after, limit=2000, **filters)
        yield from batch
        if len(batch) < 2000:
            return
        after = batch[-1].seq


@audit.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="JSON lines or CSV, one record each.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="File to write (default: standard output).")
@click.option("--actor", help="Only this actor's records.")
@click.option("--action", help="Only this action.")
@click.option("--since", help="Only records from this date or date-time on.")
def export(fmt: str, output: str | None, actor: str | None, action: str | None,
           since: str | None) -> None:
    """Write the records for a SIEM, oldest first, with their hashes."""
    moment = parse_moment(since, "--since") if since else None
    engine = _engine()
    stream: TextIO = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        records = _all(engine, actor=actor, action=action, since=moment) \
            if _has_tables(engine) else iter(())
        if fmt == "jsonl":
            for record in records:
                stream.write(json.dumps(record.as_dict(), sort_keys=True) + "\n")
        else:
            writer = csv.writer(stream)
            writer.writerow(CSV_COLUMNS)
            for record in records:
                row = record.as_dict()
                row["details"] = json.dumps(row["details"], sort_keys=True)
                writer.writerow([row[column] for column in CSV_COLUMNS])
    finally:
        if output:
            stream.close()
