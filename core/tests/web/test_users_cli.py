"""``flow users``: create, list, reset-password, delete, and API tokens shown once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from flow.cli.main import cli
from flow.plugins import PluginManager, activate


@pytest.fixture
def flow_users(db_url: str) -> Iterator[Any]:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["users", *args], input=input, catch_exceptions=False)

    with activate(PluginManager().load()):
        yield invoke


def test_a_created_user_can_log_in_and_appears_in_the_list(flow_users: Any) -> None:
    from flow.store.session import session_scope
    from flow.web.users import authenticate

    created = flow_users("create", "carol", "--role", "op", "--password-stdin",
                         input="a long password\n")
    assert created.exit_code == 0, created.output
    listed = flow_users("list", "-o", "json")
    assert '"carol"' in listed.output and '"op"' in listed.output
    with session_scope() as session:
        assert authenticate(session, "carol", "a long password") is not None
        assert authenticate(session, "carol", "wrong") is None


def test_a_short_password_or_a_duplicate_user_is_refused_with_the_reason(
        flow_users: Any) -> None:
    short = flow_users("create", "dave", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    flow_users("create", "dave", "--password-stdin", input="long enough\n")
    again = flow_users("create", "dave", "--password-stdin", input="long enough\n")
    assert again.exit_code == 1 and "already exists" in again.output


def test_a_token_is_printed_once_and_only_its_hash_is_stored(flow_users: Any) -> None:
    from flow.store.models import ApiToken
    from flow.store.session import session_scope
    from flow.web.users import token_hash, user_for_token

    flow_users("create", "bot", "--password-stdin", input="long enough\n")
    result = flow_users("token", "create", "bot", "--name", "ci")
    token = result.stdout.strip()
    assert token.startswith("flow_")
    with session_scope() as session:
        rows = list(session.scalars(select(ApiToken)))
        assert [(r.name, r.token_hash) for r in rows] == [("ci", token_hash(token))]
        user = user_for_token(session, token)
        assert user is not None and user.username == "bot"


def test_reset_password_and_delete(flow_users: Any) -> None:
    from flow.store.session import session_scope
    from flow.web.users import authenticate

    flow_users("create", "erin", "--password-stdin", input="first password\n")
    assert flow_users("reset-password", "erin", "--password-stdin",
                      input="second password\n").exit_code == 0
    with session_scope() as session:
        assert authenticate(session, "erin", "second password") is not None
    assert flow_users("delete", "erin", "--yes").exit_code == 0
    missing = flow_users("delete", "erin", "--yes")
    assert missing.exit_code == 1 and "no user named 'erin'" in missing.output
