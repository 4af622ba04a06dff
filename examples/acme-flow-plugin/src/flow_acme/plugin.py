"""Acme's plugin module: only hookimpls and records, classes named by import string.

Every ``flow`` command loads this module; it imports neither the operators nor click's commands
nor Flask until they are used.
"""

from __future__ import annotations

from typing import Any

from flow import hookimpl
from flow.records import ConnectionField, ConnectionTypeSpec, OperatorSpec

CONN_TYPE = "acme_warehouse"


@hookimpl
def flow_operators() -> list[OperatorSpec]:
    return [
        OperatorSpec("AcmeLoadOperator", "flow_acme.operators:AcmeLoadOperator",
                     "Append rows to a table of the Acme warehouse."),
        OperatorSpec("AcmeRowCountCheckOperator", "flow_acme.operators:AcmeRowCountCheckOperator",
                     "Fail unless a warehouse table has at least a minimum number of rows."),
    ]


@hookimpl
def flow_connection_types() -> list[ConnectionTypeSpec]:
    return [
        ConnectionTypeSpec(
            CONN_TYPE, "Acme warehouse", hook="flow_acme.hooks:AcmeWarehouseHook",
            fields=(ConnectionField("host", "Warehouse folder", required=True),
                    ConnectionField("schema", "Schema", placeholder="public"),
                    ConnectionField("password", "Access token", sensitive=True)),
            description="Acme's warehouse: one JSON-lines file per table."),
    ]


@hookimpl
def flow_cli(cli: Any) -> None:
    from flow_acme.cli import acme

    cli.add_command(acme)


@hookimpl
def flow_web(app: Any) -> None:
    from flow_acme.web import register

    register(app)
