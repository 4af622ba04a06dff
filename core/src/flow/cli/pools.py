"""``flow pools``: the named slot counts that bound how many tasks run at once."""

from __future__ import annotations

import click

from flow.cli.output import echo_rows, output_option


def _engine() -> object:
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    engine = get_engine()
    ensure_current(engine)
    return engine


@click.group()
def pools() -> None:
    """Manage pools that bound concurrent tasks."""


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=int)
@click.option("--description", default=None)
def set_(name: str, slots: int, description: str | None) -> None:
    """Create pool NAME with SLOTS slots, or change its slots."""
    from flow.scheduling.pools import PoolError, set_pool
    from flow.store.event_log import os_user, record_user_action
    from flow.store.session import session_scope

    with session_scope(_engine()) as session:  # type: ignore[arg-type]
        try:
            set_pool(session, name, slots, description)
        except PoolError as err:
            raise click.ClickException(str(err)) from None
        record_user_action(os_user(), "pool.set", name, {"slots": slots}, source="cli",
                           session=session)
    click.echo(f"pool {name}: {slots} slots")


@pools.command("list")
@output_option
def list_(output: str) -> None:
    """List pools with their slots, the slots in use (queued and running) and open."""
    from flow.scheduling.pools import pool_usage
    from flow.store.session import session_scope

    with session_scope(_engine()) as session:  # type: ignore[arg-type]
        rows = pool_usage(session)
    echo_rows(rows, output)


@pools.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete pool NAME (its tasks wait until a pool of that name exists again)."""
    from flow.scheduling.pools import PoolError, delete_pool
    from flow.store.event_log import os_user, record_user_action
    from flow.store.session import session_scope

    with session_scope(_engine()) as session:  # type: ignore[arg-type]
        try:
            delete_pool(session, name)
        except PoolError as err:
            raise click.ClickException(str(err)) from None
        record_user_action(os_user(), "pool.delete", name, {}, source="cli", session=session)
    click.echo(f"pool {name} deleted")
