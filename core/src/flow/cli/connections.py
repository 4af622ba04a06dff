"""``flow connections``: add, show, list, delete, import, export and test connections.

Passwords and sensitive extras are printed only with ``--reveal``. ``list`` shows what the
metadata database holds; ``get`` and ``test`` resolve an id as a task would (environment,
database, plugin backends). Every change is recorded in the event log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flow.cli.db import ready_database
from flow.cli.output import echo_rows, output_option
from flow.exceptions import ActionVetoed, ConnectionNotFound, FernetKeyMissing

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LIST_COLUMNS = ["conn_id", "conn_type", "host", "port", "schema", "login", "description"]


def _record(session: Session, action: str, conn_id: str,
            details: dict[str, Any] | None = None) -> None:
    """Record the change in its transaction, before the commit: a plugin may refuse it
    (:class:`~flow.exceptions.ActionVetoed`), and then nothing is stored."""
    from flow.store.event_log import os_user, record_user_action

    record_user_action(os_user(), action, conn_id, details or {}, source="cli",
                       session=session)


def _fail_on_user_errors(func: Any) -> Any:
    """Turn the errors a user can fix into a one-line message and exit code 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flow.secrets.database import AlreadyExists
        from flow.secrets.fernet import FernetDecryptError

        try:
            return func(*args, **kwargs)
        except (FernetKeyMissing, ConnectionNotFound, AlreadyExists, FernetDecryptError,
                ActionVetoed, ValueError) as err:
            raise click.ClickException(str(err)) from None
    return wrapper


@click.group()
def connections() -> None:
    """Manage connections to external systems."""


@connections.command()
@click.argument("conn_id")
@click.option("--conn-uri", help="The whole connection as a URI: type://login:pass@host:port/schema")
@click.option("--conn-json", help="The whole connection as a JSON object.")
@click.option("--conn-type", help="Connection type (postgres, mysql, http, ...).")
@click.option("--conn-host")
@click.option("--conn-login")
@click.option("--conn-password")
@click.option("--conn-port", type=int)
@click.option("--conn-schema")
@click.option("--conn-extra", help="Extra fields as a JSON object.")
@click.option("--conn-description")
@click.option("--overwrite", is_flag=True, help="Replace a connection with the same id.")
@_fail_on_user_errors
def add(conn_id: str, conn_uri: str | None, conn_json: str | None, conn_type: str | None,
        conn_host: str | None, conn_login: str | None, conn_password: str | None,
        conn_port: int | None, conn_schema: str | None, conn_extra: str | None,
        conn_description: str | None, overwrite: bool) -> None:
    """Store a connection, given as --conn-uri, --conn-json or --conn-type plus fields."""
    from flow.secrets.connection import Connection
    from flow.secrets.database import save_connection

    fields = [conn_type, conn_host, conn_login, conn_password, conn_port, conn_schema, conn_extra]
    given = [name for name, value in (("--conn-uri", conn_uri), ("--conn-json", conn_json))
             if value]
    if len(given) > 1 or (given and any(v is not None for v in fields)):
        raise click.UsageError("give the connection either as --conn-uri, as --conn-json, or "
                               "as --conn-type with --conn-host/--conn-login/... fields")
    if conn_uri:
        connection = Connection.from_uri(conn_uri, conn_id=conn_id, description=conn_description)
    elif conn_json:
        connection = Connection.from_dict(conn_id, _json_object(conn_json, "--conn-json"))
    elif conn_type:
        connection = Connection(
            conn_id, conn_type, host=conn_host, login=conn_login, password=conn_password,
            port=conn_port, schema=conn_schema,
            extra=_json_object(conn_extra, "--conn-extra") if conn_extra else None,
            description=conn_description)
    else:
        raise click.UsageError("give --conn-uri, --conn-json or --conn-type")
    ready_database()
    from flow.store.session import session_scope

    with session_scope() as session:
        replaced = save_connection(connection, overwrite=overwrite, session=session)
        _record(session, "connection.update" if replaced else "connection.create", conn_id,
                connection.to_dict(reveal=False))
    click.echo(f"{'Replaced' if replaced else 'Added'} connection {conn_id!r} "
               f"({connection.conn_type}).")


@connections.command()
@click.argument("conn_id")
@click.option("--reveal", is_flag=True, help="Print the password and sensitive extras.")
@output_option
@_fail_on_user_errors
def get(conn_id: str, reveal: bool, output: str) -> None:
    """Show one connection, looked up as a task would; the password as *** unless --reveal."""
    from flow.secrets.connection import Connection, accessor_context

    ready_database()
    with accessor_context({"source": "cli"}):
        connection = Connection.get(conn_id)
    row = connection.to_dict(reveal=reveal)
    if output == "table":
        for key, value in row.items():
            shown = json.dumps(value) if isinstance(value, dict) else ("" if value is None
                                                                        else value)
            click.echo(f"{key}: {shown}")
        if reveal:
            click.echo(f"uri: {connection.get_uri()}")
        return
    echo_rows([row], output)


@connections.command("list")
@output_option
@_fail_on_user_errors
def list_(output: str) -> None:
    """Connections stored in the metadata database (never their passwords)."""
    from flow.secrets.database import list_connections

    ready_database()
    rows = [c.to_dict(reveal=False) for c in list_connections()]
    if output == "table":
        echo_rows(rows, output, columns=LIST_COLUMNS)
    else:
        echo_rows(rows, output)


@connections.command()
@click.argument("conn_id")
@_fail_on_user_errors
def delete(conn_id: str) -> None:
    """Delete a connection from the metadata database."""
    from flow.secrets.database import delete_connection

    ready_database()
    from flow.store.session import session_scope

    with session_scope() as session:
        if not delete_connection(conn_id, session=session):
            raise click.ClickException(f"connection {conn_id!r} is not in the metadata "
                                       "database")
        _record(session, "connection.delete", conn_id)
    click.echo(f"Deleted connection {conn_id!r}.")


@connections.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace connections that already exist.")
@_fail_on_user_errors
def import_(file: Path, overwrite: bool) -> None:
    """Add the connections in a JSON or YAML file: {conn_id: {conn_type: ..., ...} | {uri: ...}}."""
    from flow.secrets.connection import Connection
    from flow.secrets.database import AlreadyExists, load_connection, save_connection

    data = _read_mapping(file)
    parsed = []
    for conn_id, fields in data.items():
        if isinstance(fields, str):
            fields = {"uri": fields}
        if not isinstance(fields, dict):
            raise click.ClickException(f"{file}: connection {conn_id!r} must be a mapping of "
                                       f"fields or a URI string, got {type(fields).__name__}")
        try:
            parsed.append(Connection.from_dict(str(conn_id), fields))
        except ValueError as err:
            raise click.ClickException(f"{file}: {err}") from None
    ready_database()
    if not overwrite:
        existing = [c.conn_id for c in parsed if load_connection(c.conn_id) is not None]
        if existing:
            raise AlreadyExists(f"{file}: connection(s) {', '.join(existing)} already exist; "
                                "nothing was imported. Use --overwrite to replace them.")
    from flow.store.session import session_scope

    with session_scope() as session:  # all or nothing
        for connection in parsed:
            replaced = save_connection(connection, overwrite=overwrite, session=session)
            _record(session, "connection.update" if replaced else "connection.create",
                    connection.conn_id,
                    {**connection.to_dict(reveal=False), "imported_from": str(file)})
    click.echo(f"Imported {len(parsed)} connection(s) from {file}.")


@connections.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(["json", "yaml"]),
              help="File format (default: from the file's extension, else json).")
@click.option("--reveal", is_flag=True,
              help="Include passwords and sensitive extras (the file then holds secrets).")
@_fail_on_user_errors
def export(file: Path, file_format: str | None, reveal: bool) -> None:
    """Write the stored connections to FILE ("-" for stdout), without secrets unless --reveal."""
    from flow.secrets.database import list_connections

    ready_database()
    data: dict[str, dict[str, Any]] = {}
    for connection in list_connections():
        fields = connection.to_dict(reveal=reveal)
        fields.pop("conn_id")
        if not reveal:
            fields.pop("password")
            fields["extra"] = {k: v for k, v in (fields["extra"] or {}).items() if v != "***"}
        data[connection.conn_id] = {k: v for k, v in fields.items() if v not in (None, {})}
    text = _dump(data, file_format or ("yaml" if file.suffix in {".yaml", ".yml"} else "json"))
    if str(file) == "-":
        click.echo(text)
    else:
        file.write_text(text)
        if reveal:
            os.chmod(file, 0o600)
        click.echo(f"Exported {len(data)} connection(s) to {file}.")
    if reveal:
        click.echo("Warning: the export holds passwords in plain text; keep it safe and delete "
                   "it when done.", err=True)
    else:
        click.echo("Passwords and sensitive extras were left out; use --reveal to include "
                   "them.", err=True)


@connections.command()
@click.argument("conn_id")
@_fail_on_user_errors
def test(conn_id: str) -> None:
    """Check that flow can reach the system a connection points at."""
    from flow.secrets.connection import Connection, accessor_context
    from flow.secrets.hooks import hook_for

    ready_database()
    with accessor_context({"source": "cli"}):
        connection = Connection.get(conn_id)
    hook = hook_for(connection)
    if hook is None or type(hook).test_connection is _base_test_connection():
        raise click.ClickException(f"connection {conn_id!r} of type {connection.conn_type!r} "
                                   "cannot be tested: its type has no hook with "
                                   "test_connection()")
    ok, message = hook.test_connection()
    if not ok:
        raise click.ClickException(f"connection {conn_id!r} failed: {message}")
    click.echo(f"Connection {conn_id!r} works: {message}")


def _base_test_connection() -> Any:
    from flow.secrets.hooks import BaseHook

    return BaseHook.test_connection


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON: {err}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value


def _read_mapping(file: Path) -> dict[str, Any]:
    text = file.read_text()
    try:
        if file.suffix in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:
        raise click.ClickException(f"{file}: cannot parse: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.ClickException(f"{file}: the top level must be a mapping of id to value")
    return data


def _dump(data: Any, file_format: str) -> str:
    if file_format == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    return json.dumps(data, indent=2, sort_keys=True)
