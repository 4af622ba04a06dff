"""``flow db``: create, upgrade, check and reset the metadata database; rotate the Fernet key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from flow.config import load_config

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _configured_url() -> str:
    return str(load_config().get("database", "url"))


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group()
def db() -> None:
    """Create, upgrade and check the metadata database ([database] url)."""


@db.command()
@click.option("--show-sql", is_flag=True,
              help="Print the SQL for the configured database's dialect; change nothing.")
@click.option("--to-revision", default="head", show_default=True,
              help="Alembic revision to migrate to.")
def migrate(show_sql: bool, to_revision: str) -> None:
    """Create the schema, or bring it up to date."""
    from flow.store import migrate as migrations
    from flow.store.session import get_engine, normalize_url

    url = _configured_url()
    if show_sql:
        click.echo(migrations.upgrade_sql(normalize_url(url), to_revision))
        return
    engine = get_engine(url)
    before = _current_or_fail(engine, url)
    migrations.upgrade(engine, to_revision)
    after = migrations.current_revision(engine)
    if before == after:
        click.echo(f"{_safe(url)} is already at revision {after}.")
    else:
        click.echo(f"Migrated {_safe(url)} from {before or 'empty'} to {after}.")


@db.command()
def check() -> None:
    """Exit 1 unless the database is reachable and at the newest schema revision."""
    from flow.store import migrate as migrations
    from flow.store.session import get_engine

    url = _configured_url()
    engine = get_engine(url)
    current = _current_or_fail(engine, url)
    head = migrations.head_revision()
    click.echo(f"database: {_safe(url)}")
    click.echo(f"current revision: {current or 'none (empty database)'}")
    click.echo(f"head revision: {head}")
    if current != head:
        raise click.ClickException("the database is not at the newest schema; run "
                                   "`flow db migrate`")
    click.echo("The database is up to date.")


@db.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reset(yes: bool) -> None:
    """Drop every table and create the schema again. All data is lost."""
    from flow.store import migrate as migrations
    from flow.store.session import get_engine

    url = _configured_url()
    if not yes:
        click.confirm(f"This deletes every DAG run, connection and variable in {_safe(url)}. "
                      "Continue?", abort=True)
    engine = get_engine(url)
    _current_or_fail(engine, url)
    migrations.reset(engine)
    click.echo(f"Reset {_safe(url)} to revision {migrations.head_revision()}.")


@db.command("rotate-fernet-key")
def rotate_fernet_key() -> None:
    """Re-encrypt stored passwords, extras and variables with the first [core] fernet_key.

    Put the new key first and keep the old one after it (comma-separated), run this, then
    remove the old key.
    """
    from flow.secrets.database import rotate_fernet_key as rotate
    from flow.store.event_log import os_user, record_user_action
    from flow.store.session import session_scope

    ready_database()
    with session_scope() as session:  # a plugin that refuses the rotation undoes it
        count = rotate(session=session)
        record_user_action(os_user(), "fernet_key.rotate", "", {"values": count},
                           source="cli", session=session)
    click.echo(f"Re-encrypted {count} stored value(s) with the first configured key.")


def ready_database() -> None:
    """Make sure the configured database can be used: reachable and at the newest schema (an
    embedded SQLite database is migrated on the spot); a ClickException saying what to do."""
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    url = _configured_url()
    engine = get_engine(url)
    _current_or_fail(engine, url)
    try:
        ensure_current(engine)
    except RuntimeError as err:
        raise click.ClickException(str(err)) from None


def _current_or_fail(engine: Engine, url: str) -> str | None:
    from flow.store.migrate import current_revision

    try:
        return current_revision(engine)
    except Exception as err:
        message = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise click.ClickException(
            f"cannot reach the metadata database {_safe(url)}: {message}. Check [database] url "
            "(FLOW__DATABASE__URL) and that the server is running.") from None
