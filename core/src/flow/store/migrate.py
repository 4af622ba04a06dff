"""Schema management: ``flow db migrate|check|reset`` and ``--show-sql``.

The schema is created by Alembic from the first table on, never by ``create_all``, so a database
made by a test is the same as one made in production.

Checking that a database is current (:func:`is_current`, run by every long-lived process at
start) does not import Alembic: it reads the ``alembic_version`` row and the migration files'
``revision`` / ``down_revision`` lines. Alembic (with Mako and Pygments, 10 MB in every
scheduler) is loaded only to migrate, or when the history has branches.
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, MetaData, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$",
                            re.MULTILINE)


def alembic_config(url: str = "sqlite://", output: io.StringIO | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    # Offline (--sql) mode writes the SQL to output_buffer, not to stdout.
    config = AlembicConfig(output_buffer=output) if output is not None else AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def head_revision() -> str:
    """The newest revision: read from the migration files when the history is a straight
    line, else asked of Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if not found:
            continue  # not a migration (the package's __init__)
        revision, parent = found.get("revision", ""), found.get("down_revision", "None")
        if not re.fullmatch(r"['\"][\w-]+['\"]", revision) or not re.fullmatch(
                r"None|['\"][\w-]+['\"]", parent):
            return _alembic_head()  # a merge (a tuple), or a form this does not read
        revisions.add(revision[1:-1])
        if parent != "None":
            parents.add(parent[1:-1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    with engine.connect() as connection:
        try:
            version = connection.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:  # no alembic_version table: an empty database
            return None
    return None if version is None else str(version)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` (default: the newest)."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL that ``upgrade`` would run on an empty database of ``url``'s dialect."""
    from alembic import command

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
