"""Schema management: ``flow db migrate|check|reset`` and ``--show-sql``.

The schema is created by Alembic from the first table on, never by ``create_all``, so a database
made by a test is the same as one made in production.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str = "sqlite://", output: io.StringIO | None = None) -> AlembicConfig:
    # Offline (--sql) mode writes the SQL to output_buffer, not to stdout.
    config = AlembicConfig(output_buffer=output) if output is not None else AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` (default: the newest)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL that ``upgrade`` would run on an empty database of ``url``'s dialect."""
    out = io.StringIO()
    command.upgrade(alembic_config(url, output=out), revision, sql=True)
    return out.getvalue()


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def reset(engine: Engine) -> None:
    """Drop every table (flow's and Alembic's) and migrate from nothing."""
    drop_all(engine)
    upgrade(engine)


def drop_all(engine: Engine) -> None:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    with engine.begin() as connection:
        if engine.dialect.name == "mysql":
            connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        metadata.drop_all(connection)
        if engine.dialect.name == "mysql":
            connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))


def ensure_current(engine: Engine) -> None:
    """Migrate an embedded SQLite database that is behind; refuse for a server database.

    A newcomer's first ``flow`` command just works on SQLite; a production database is only ever
    changed by an explicit ``flow db migrate``.
    """
    if is_current(engine):
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=True)
    raise RuntimeError(f"the metadata database {url} is not at the current schema "
                       f"({current_revision(engine) or 'empty'} != {head_revision()}); "
                       "run `flow db migrate`")
