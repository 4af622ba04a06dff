"""``flow variables``: set, show, list, delete, import and export variables.

A variable whose key looks sensitive (password, secret, token, key, ...) is shown as ``***``
unless ``--reveal``. Every change is recorded in the event log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flow.cli.connections import _dump, _fail_on_user_errors, _read_mapping
from flow.cli.db import ready_database
from flow.cli.output import echo_rows, output_option
from flow.secrets.masking import MASK, is_sensitive_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _record(session: Session, action: str, key: str,
            details: dict[str, Any] | None = None) -> None:
    """Record the change in its transaction, before the commit: a plugin may refuse it
    (:class:`~flow.exceptions.ActionVetoed`), and then nothing is stored."""
    from flow.store.event_log import os_user, record_user_action

    record_user_action(os_user(), action, key, details or {}, source="cli", session=session)


def _shown(key: str, value: str, reveal: bool) -> str:
    return MASK if is_sensitive_name(key) and not reveal else value


@click.group()
def variables() -> None:
    """Manage variables."""


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True, help="VALUE is JSON; stored normalized.")
@click.option("--description", help="What the variable is for.")
@_fail_on_user_errors
def set_(key: str, value: str, as_json: bool, description: str | None) -> None:
    """Store a variable (encrypted) in the metadata database."""
    from flow.secrets.database import save_variable

    if as_json:
        try:
            value = json.dumps(json.loads(value))
        except json.JSONDecodeError as err:
            raise click.BadParameter(f"not valid JSON: {err}", param_hint="VALUE") from None
    ready_database()
    from flow.store.session import session_scope

    with session_scope() as session:
        replaced = save_variable(key, value, description, session=session)
        _record(session, "variable.update" if replaced else "variable.create", key,
                {"description": description, "value": value} if not is_sensitive_name(key)
                else {"description": description})
    click.echo(f"{'Updated' if replaced else 'Set'} variable {key!r}.")


@variables.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Parse the value as JSON and pretty-print.")
@click.option("--default", "default", help="Print this when the variable does not exist.")
@click.option("--reveal", is_flag=True, help="Print a sensitive variable's value.")
@_fail_on_user_errors
def get(key: str, as_json: bool, default: str | None, reveal: bool) -> None:
    """Print a variable's value, looked up as a task would (environment, database, plugins)."""
    from flow.secrets.variable import NOTSET, Variable

    ready_database()
    value = Variable.get(key, default=NOTSET if default is None else default)
    if as_json and value != default:
        try:
            value = json.dumps(json.loads(value), indent=2)
        except json.JSONDecodeError as err:
            raise click.ClickException(f"variable {key!r} is not JSON: {err}") from None
    click.echo(_shown(key, value, reveal))


@variables.command("list")
@click.option("--reveal", is_flag=True, help="Print sensitive values too.")
@output_option
@_fail_on_user_errors
def list_(reveal: bool, output: str) -> None:
    """Variables stored in the metadata database."""
    from flow.secrets.database import list_variables

    ready_database()
    rows = [{"key": v.key, "value": _shown(v.key, v.value, reveal),
             "description": v.description} for v in list_variables()]
    echo_rows(rows, output, columns=["key", "value", "description"])


@variables.command()
@click.argument("key")
@_fail_on_user_errors
def delete(key: str) -> None:
    """Delete a variable from the metadata database."""
    from flow.secrets.database import delete_variable

    ready_database()
    from flow.store.session import session_scope

    with session_scope() as session:
        if not delete_variable(key, session=session):
            raise click.ClickException(f"variable {key!r} is not in the metadata database")
        _record(session, "variable.delete", key)
    click.echo(f"Deleted variable {key!r}.")


@variables.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_fail_on_user_errors
def import_(file: Path) -> None:
    """Set the variables of a JSON or YAML file {key: value}; non-string values as JSON."""
    from flow.secrets.database import save_variable

    data = _read_mapping(file)
    ready_database()
    from flow.store.session import session_scope

    with session_scope() as session:  # all or nothing
        for key, value in data.items():
            text = value if isinstance(value, str) else json.dumps(value)
            replaced = save_variable(str(key), text, session=session)
            _record(session, "variable.update" if replaced else "variable.create", str(key),
                    {"imported_from": str(file)})
    click.echo(f"Imported {len(data)} variable(s) from {file}.")


@variables.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(["json", "yaml"]),
              help="File format (default: from the file's extension, else json).")
@click.option("--reveal", is_flag=True, help="Include sensitive variables (the file then holds "
                                            "secrets).")
@_fail_on_user_errors
def export(file: Path, file_format: str | None, reveal: bool) -> None:
    """Write the stored variables to FILE ("-" for stdout); sensitive ones only with --reveal."""
    from flow.secrets.database import list_variables

    ready_database()
    data: dict[str, Any] = {}
    skipped = 0
    for variable in list_variables():
        if is_sensitive_name(variable.key) and not reveal:
            skipped += 1
            continue
        data[variable.key] = _jsonish(variable.value)
    text = _dump(data, file_format or ("yaml" if file.suffix in {".yaml", ".yml"} else "json"))
    if str(file) == "-":
        click.echo(text)
    else:
        file.write_text(text)
        if reveal:
            os.chmod(file, 0o600)
        click.echo(f"Exported {len(data)} variable(s) to {file}.")
    if skipped:
        click.echo(f"{skipped} sensitive variable(s) left out; use --reveal to include them.",
                   err=True)
    elif reveal:
        click.echo("Warning: the export holds secrets in plain text; keep it safe.", err=True)


def _jsonish(text: str) -> Any:
    """A JSON object or array as itself (so import/export round-trip), anything else as text."""
    if text[:1] in {"{", "["}:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text
