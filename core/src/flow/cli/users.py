"""``flow users``: people and scripts that use the web UI and REST API, and their tokens.

Passwords are read from a prompt (or ``--password-stdin`` for scripts), never from an argument
that ``ps`` would show. An API token is printed once; only its SHA-256 is stored.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from flow.cli.output import echo_rows, output_option

ROLE_CHOICE = click.Choice(["admin", "op", "viewer"])


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _run(func: Any, *args: Any, record: tuple[str, str, dict[str, Any]] | None = None,
         **kwargs: Any) -> Any:
    """Run a user-management function in one transaction; its error as a one-line message.

    ``record`` (action, target, details) is recorded in that transaction before the commit:
    a plugin may refuse the action, and then nothing is changed."""
    from flow.cli.db import ready_database
    from flow.exceptions import ActionVetoed
    from flow.store.event_log import os_user, record_user_action
    from flow.store.session import session_scope
    from flow.web.users import UserError

    ready_database()
    try:
        with session_scope() as session:
            result = func(session, *args, **kwargs)
            if record is not None:
                action, target, details = record
                record_user_action(os_user(), action, target, details, source="cli",
                                   session=session)
            return result
    except (UserError, ActionVetoed) as err:
        raise click.ClickException(str(err)) from None


@click.group()
def users() -> None:
    """Manage web UI and API users and tokens."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=ROLE_CHOICE, default="viewer", show_default=True,
              help="admin: everything; op: operate DAGs; viewer: read only.")
@click.option("--email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create(username: str, role: str, email: str | None, password_stdin: bool) -> None:
    """Create a user."""
    from flow.web.users import create_user

    password = _password(password_stdin)
    _run(create_user, username, password, role, email,
         record=("user.create", username, {"role": role}))
    click.echo(f"User {username} created with role {role}.")


@users.command("list")
@output_option
def list_(output: str) -> None:
    """List users."""
    from flow.web.users import list_users

    rows = _run(lambda s: [{"username": u.username, "role": u.role, "email": u.email or "",
                            "active": u.active, "last_login": u.last_login}
                           for u in list_users(s)])
    echo_rows(rows, output, ["username", "role", "email", "active", "last_login"])


@users.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(username: str, yes: bool) -> None:
    """Delete a user and their API tokens."""
    from flow.web.users import delete_user

    if not yes:
        click.confirm(f"Delete user {username} and their tokens?", abort=True)
    _run(delete_user, username, record=("user.delete", username, {}))
    click.echo(f"User {username} deleted.")


@users.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def reset_password_(username: str, password_stdin: bool) -> None:
    """Set a new password (ends the user's existing login sessions)."""
    from flow.web.users import reset_password

    _run(reset_password, username, _password(password_stdin),
         record=("user.reset_password", username, {}))
    click.echo(f"Password of {username} changed.")


@users.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.argument("username")
@click.option("--name", default="default", show_default=True, help="What the token is for.")
def token_create(username: str, name: str) -> None:
    """Make an API token for USERNAME and print it (shown only this once)."""
    from flow.web.users import create_token

    value = _run(create_token, username, name,
                 record=("user.token_create", username, {"name": name}))
    click.echo(value)
    click.echo("Keep this token: flow stores only its hash and cannot show it again. Send it "
               "as 'Authorization: Bearer <token>'.", err=True)
