"""``flow webserver``: run the web UI and REST API."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", help="Address to listen on (default: [webserver] host).")
@click.option("--port", type=int, help="Port to listen on (default: [webserver] port).")
def webserver(host: str | None, port: int | None) -> None:
    """Run the web UI and REST API (log in with a user from `flow users create`)."""
    from flow.cli.db import ready_database
    from flow.config import load_config
    from flow.web.server import serve

    ready_database()
    config = load_config()
    host = host or str(config.get("webserver", "host"))
    port = port if port is not None else int(config.get("webserver", "port"))
    click.echo(f"flow web server on http://{host}:{port}")
    serve(host, port)
