"""Rendering of lists and records for ``--output table|json|yaml``, shared by every command."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(func: F) -> F:
    """The ``--output/-o table|json|yaml`` option every list command takes."""
    return click.option(
        "--output", "-o", type=click.Choice(["table", "json", "yaml"]), default="table",
        show_default=True, help="Output format; json and yaml are for scripts.",
    )(func)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render(rows: Sequence[dict[str, Any]], output: str = "table",
           columns: Sequence[str] | None = None) -> str:
    rows = [_plain(row) for row in rows]
    if output == "json":
        return json.dumps(rows, indent=2, default=str)
    if output == "yaml":
        import yaml

        return yaml.safe_dump(rows, sort_keys=False, default_flow_style=False).rstrip()
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def echo_rows(rows: Sequence[dict[str, Any]], output: str = "table",
              columns: Sequence[str] | None = None) -> None:
    click.echo(render(rows, output, columns))
