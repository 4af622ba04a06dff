"""``flow acme``: commands Acme's engineers use next to flow's own."""

from __future__ import annotations

import click


@click.group()
def acme() -> None:
    """Acme's warehouse commands (from the flow-acme plugin)."""


@acme.command("tables")
@click.option("--conn-id", default="acme_warehouse_default", show_default=True,
              help="The acme_warehouse connection to read.")
def tables(conn_id: str) -> None:
    """List the warehouse's tables with their row counts."""
    from flow_acme.hooks import AcmeWarehouseHook

    hook = AcmeWarehouseHook(conn_id)
    names = hook.tables()
    if not names:
        click.echo("no tables")
    for name in names:
        click.echo(f"{name}\t{len(hook.rows(name))}")
