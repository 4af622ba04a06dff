"""``flow standalone``: flow on one machine in one command.

Creates FLOW_HOME and its ``flow.toml`` (a generated Fernet key and web server secret key), the
SQLite database, a DAG folder with the example DAGs (``FLOW_HOME/dags``, filled once, from the
examples of a flow source checkout: the wheel ships none), an ``admin`` user for the UI, then
runs the scheduler and, in the same process, the web server. Ctrl-C (or SIGTERM) stops both:
the executor finishes what runs and the scheduler's job row is ended.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path

import click

EXAMPLE_PATTERN = "*.py"


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


def packaged_examples() -> list[Path]:
    """Example DAG files next to this flow: the ``examples/`` folder of a source checkout."""
    import flow

    root = Path(flow.__file__).resolve().parents[3] / "examples"
    return sorted(root.glob(EXAMPLE_PATTERN)) if root.is_dir() else []


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
    if config.get("core", "load_examples"):
        copied = copy_examples(dags_folder)
        if copied:
            click.echo(f"copied {len(copied)} example DAG(s) into {dags_folder}")
    engine = get_engine()
    upgrade(engine)
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
