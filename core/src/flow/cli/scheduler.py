"""``flow scheduler``: run the scheduler in the foreground until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import logging

import click


def configure_logging() -> None:
    from flow.config import load_config
    from flow.secrets.masking import MaskingFilter

    level = str(load_config().get("logging", "level")).upper()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("flow.scheduling", "flow.builtin.executors", "flow.cli"):
        logging.getLogger(name).setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


@click.command()
@click.option("--num-runs", "-n", type=click.IntRange(min=1), default=None,
              help="Stop after this many loop iterations.")
@click.option("--once", is_flag=True,
              help="Stop as soon as no DAG run is queued or running and no task is in flight "
                   "(runs that are due are created first).")
def scheduler(num_runs: int | None, once: bool) -> None:
    """Run the scheduler: create due DAG runs, queue ready tasks, hand them to the executor."""
    from flow.scheduling.scheduler import Scheduler
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    configure_logging()
    engine = get_engine()
    ensure_current(engine)
    runner = Scheduler(engine=engine, num_runs=num_runs, until_idle=once)
    runner.install_signal_handlers()
    loops = runner.run()
    click.echo(f"scheduler stopped after {loops} loop(s)", err=True)
