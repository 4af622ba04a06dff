"""``flow standalone``: flow on one machine in one command.

Creates FLOW_HOME and its ``flow.toml`` (a generated Fernet key and web server secret key), the
SQLite database, a DAG folder with the example DAGs (``FLOW_HOME/dags``, copied from the
``flow/example_dags`` folder of the installed package, or from ``examples/`` of the source
checkout an editable install runs from) and the ``example_api`` connection the examples read,
an ``admin`` user for the UI, then runs the scheduler and, in the same process, the web server.
Ctrl-C (or SIGTERM) stops both: the executor finishes what runs and the scheduler's job row is
ended.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path

import click

EXAMPLE_PATTERN = "*.py"
# Read by examples/example_connections.py. Nothing is contacted; its password is there to show
# that task logs mask it.
EXAMPLE_CONNECTION_ID = "example_api"
EXAMPLE_CONNECTION_URI = "http://demo:s3cr3t-demo@127.0.0.1:8080/api"


def write_config(home: Path) -> bool:
    """Write ``flow.toml`` with fresh keys unless it exists; True if written."""
    path = home / "flow.toml"
    if path.exists():
        return False
    from cryptography.fernet import Fernet

    path.write_text(
        "# Written by `flow standalone`. Every key can be overridden by FLOW__SECTION__KEY.\n"
        "[core]\n"
        f'dags_folder = "{home / "dags"}"\n'
        f'fernet_key = "{Fernet.generate_key().decode()}"\n'
        "load_examples = true\n\n"
        "[webserver]\n"
        f'secret_key = "{secrets.token_urlsafe(32)}"\n')
    path.chmod(0o600)
    return True


def examples_folder() -> Path | None:
    """Where the example DAGs are: ``flow/example_dags`` in an installed wheel, else the
    ``examples/`` folder of the source checkout that an editable install runs from."""
    import flow

    package = Path(flow.__file__).resolve().parent
    for candidate in (package / "example_dags", package.parents[2] / "examples"):
        if candidate.is_dir():
            return candidate
    return None


def packaged_examples() -> list[Path]:
    """The example DAG files shipped with this flow (none if it has none)."""
    folder = examples_folder()
    return sorted(folder.glob(EXAMPLE_PATTERN)) if folder is not None else []


def copy_examples(dags_folder: Path) -> list[Path]:
    """Copy the example DAGs into ``dags_folder``, never over a file already there."""
    dags_folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in packaged_examples():
        target = dags_folder / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


def ensure_example_connection() -> bool:
    """Store the connection the examples read, unless one with its id is stored already;
    True if stored. Its password is Fernet-encrypted like any connection's."""
    from flow.secrets.connection import Connection
    from flow.secrets.database import load_connection, save_connection
    from flow.store.event_log import os_user, record_user_action
    from flow.store.session import session_scope

    with session_scope() as session:
        if load_connection(EXAMPLE_CONNECTION_ID, session=session) is not None:
            return False
        connection = Connection.from_uri(
            EXAMPLE_CONNECTION_URI, conn_id=EXAMPLE_CONNECTION_ID,
            description="read by the example DAG example_connections; contacts nothing")
        save_connection(connection, session=session)
        record_user_action(os_user(), "connection.create", EXAMPLE_CONNECTION_ID,
                           connection.to_dict(reveal=False), source="cli", session=session)
        return True


def ensure_admin() -> str | None:
    """Create the ``admin`` user with a random password the first time; that password (to be
    printed once: flow keeps only its hash), or None when the user already exists."""
    from sqlalchemy import select

    from flow.store.models import User
    from flow.store.session import session_scope
    from flow.web.users import create_user

    with session_scope() as session:
        if session.scalars(select(User).where(User.username == "admin")).first() is not None:
            return None
        password = secrets.token_urlsafe(16)
        create_user(session, "admin", password, "admin", None)
        return password


def load_examples(dags_folder: Path) -> None:
    copied = copy_examples(dags_folder)
    if copied:
        click.echo(f"copied {len(copied)} example DAG(s) into {dags_folder}")
    elif not packaged_examples():
        click.echo("no example DAGs found in this installation of flow")
    if ensure_example_connection():
        click.echo(f"added connection {EXAMPLE_CONNECTION_ID!r} (read by example_connections; "
                   "its password is stored encrypted)")


def start_web_server(host: str, port: int) -> threading.Thread:
    from flow.web.server import serve

    thread = threading.Thread(target=serve, args=(host, port), name="web-server", daemon=True)
    thread.start()
    return thread


@click.command()
@click.option("--no-webserver", is_flag=True, help="Run only the scheduler.")
@click.option("--port", type=int, default=None, help="Web server port (default: [webserver] "
                                                     "port).")
def standalone(no_webserver: bool, port: int | None) -> None:
    """Set up FLOW_HOME if needed, then run the scheduler and the web server until Ctrl-C."""
    from flow.cli.scheduler import configure_logging
    from flow.config import flow_home, load_config
    from flow.scheduling.scheduler import Scheduler
    from flow.store.migrate import upgrade
    from flow.store.session import get_engine

    home = flow_home()
    home.mkdir(parents=True, exist_ok=True)
    if write_config(home):
        click.echo(f"wrote {home / 'flow.toml'} with a new Fernet key and secret key")
    config = load_config()
    dags_folder = Path(str(config.get("core", "dags_folder")))
    dags_folder.mkdir(parents=True, exist_ok=True)
    engine = get_engine()
    upgrade(engine)
    if config.get("core", "load_examples"):
        load_examples(dags_folder)
    configure_logging()
    click.echo(f"FLOW_HOME:   {home}")
    click.echo(f"DAG folder:  {dags_folder}")
    click.echo(f"task logs:   {config.get('logging', 'base_log_folder')}")
    if not no_webserver:
        host = str(config.get("webserver", "host"))
        port = port if port is not None else int(config.get("webserver", "port"))
        password = ensure_admin()
        start_web_server(host, port)
        click.echo(f"web UI:      http://{host}:{port}  (user admin)")
        if password is not None:
            click.echo(f"admin password: {password}  (shown once; flow keeps only its hash: "
                       "`flow users reset-password admin` sets a new one)")
    click.echo("stop with Ctrl-C")
    scheduler = Scheduler(engine=engine, config=config)
    scheduler.install_signal_handlers()
    scheduler.run()
    click.echo("flow standalone stopped")
