"""Builtin plugin: the database XCom backend (essential)."""

from __future__ import annotations

from flow.hookspecs import hookimpl
from flow.records import XComBackendSpec


@hookimpl
def flow_xcom_backends() -> list[XComBackendSpec]:
    return [XComBackendSpec("database", "flow.execution.xcom:DatabaseXComBackend",
                            "XComs as JSON rows in the metadata database.")]
