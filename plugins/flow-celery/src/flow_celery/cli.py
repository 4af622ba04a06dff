"""``flow celery``: run a worker, see the workers, and a liveness probe.

Celery is imported inside the commands, so ``flow --help`` stays fast.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import click

from flow.cli.output import echo_rows, output_option


@click.group()
def celery() -> None:
    """Celery workers for the `celery` executor."""


def _settings() -> Any:
    from flow.config import ConfigError
    from flow_celery.settings import CelerySettings

    try:
        return CelerySettings.load()
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


def _queue_names(queues: str | None) -> list[str]:
    names = [name.strip() for name in (queues or "default").split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue, e.g. --queues default,gpu",
                                 param_hint="--queues")
    return names


@celery.command()
@click.option("--queues", "-q", default=None, metavar="A,B",
              help="The flow queues (a task's `queue`) to take tries from; default: default.")
@click.option("--concurrency", "-c", type=int, default=None,
              help="Tries at once ([celery] worker_concurrency; 0 or unset: one per CPU).")
@click.option("--hostname", "-n", default=None,
              help="The worker's name (default celery@<host>): unique per worker.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(queues: str | None, concurrency: int | None, hostname: str | None,
           loglevel: str) -> None:
    """Run a Celery worker: it runs each try it takes through `flow tasks run`'s code, in a
    supervised child process, in warm pool processes."""
    from flow.store.migrate import ensure_current
    from flow.store.session import dispose_engines, get_engine
    from flow_celery.app import make_app

    settings = _settings()
    names = [settings.queue(name) for name in _queue_names(queues)]
    if concurrency is not None and concurrency < 1:
        raise click.BadParameter("must be 1 or more", param_hint="--concurrency")
    slots = concurrency or settings.worker_concurrency or os.cpu_count() or 1
    # Fail now, naming the problem, rather than in every try: the database must be reachable
    # and migrated. The pool processes connect on their own.
    ensure_current(get_engine())
    dispose_engines()
    argv = ["worker", f"--queues={','.join(names)}", f"--concurrency={slots}",
            f"--loglevel={loglevel}", "--pool=prefork",
            # A worker neither asks the others for their revoked tasks at start (a revoked
            # try that arrives is refused by the guarded start anyway) nor gossips: faster
            # starts, less broker traffic.
            "--without-mingle", "--without-gossip"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    make_app(settings).worker_main(argv)


@celery.command()
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait for workers' answers ([celery] operation_timeout).")
@output_option
def status(timeout: float | None, output: str) -> None:
    """The workers that answer, their queues and the tries they run; exits 1 when none
    answers."""
    from flow_celery.app import make_app
    from flow_celery.settings import mask_url

    settings = _settings()
    app = make_app(settings)
    wait = timeout if timeout is not None else min(settings.operation_timeout, 2.0)
    inspect = app.control.inspect(timeout=wait)
    try:
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception as err:
        raise click.ClickException(f"the Celery broker {mask_url(settings.broker_url)} "
                                   f"cannot be reached: {type(err).__name__}: {err}") from None
    finally:
        app.close()
    rows = []
    prefix = settings.queue_prefix
    for name in sorted(set(queues) | set(active)):
        names = [q.get("name", "") for q in queues.get(name) or []]
        tries = [_describe(request) for request in active.get(name) or []]
        rows.append({"worker": name,
                     "queues": [q[len(prefix):] if prefix and q.startswith(prefix) else q
                                for q in names],
                     "active": len(tries), "tries": tries})
    if output == "table":
        click.echo(f"broker: {mask_url(settings.broker_url)}")
        click.echo(f"results: {mask_url(settings.backend_url())}")
    echo_rows(rows, output, columns=["worker", "queues", "active", "tries"])
    if not rows:
        click.echo("no Celery worker answered", err=True)
        sys.exit(1)


def _describe(request: dict[str, Any]) -> str:
    """``dag/run/task[index] try N`` of an active Celery request."""
    from flow.execution.workload import TaskWorkload, WorkloadError

    args = request.get("args") or []
    try:
        workload = TaskWorkload.from_json(args[0] if isinstance(args, list) and args else "")
    except WorkloadError:
        return str(request.get("id"))
    return f"{workload.key} try {workload.try_number}"


@celery.command()
@click.option("--hostname", "-n", default=None,
              help="The worker to ping (default celery@<this host>, a worker's default name).")
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait for the answer ([celery] operation_timeout).")
def health(hostname: str | None, timeout: float | None) -> None:
    """Exit 0 when the worker answers a ping through the broker, else 1: a liveness probe."""
    from flow_celery.app import make_app

    settings = _settings()
    name = hostname or f"celery@{socket.gethostname()}"
    app = make_app(settings)
    try:
        replies = app.control.ping(destination=[name],
                                   timeout=timeout or min(settings.operation_timeout, 2.0))
    except Exception as err:
        click.echo(f"unhealthy: the broker cannot be reached: {type(err).__name__}: {err}",
                   err=True)
        sys.exit(1)
    finally:
        app.close()
    if any(name in reply for reply in replies or []):
        click.echo(f"{name}: ok")
        return
    click.echo(f"unhealthy: worker {name} did not answer", err=True)
    sys.exit(1)
