"""Connections: URIs, the environment, the database, plugin backends, and the access event."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from flow.exceptions import ConnectionNotFound, FernetKeyMissing
from flow.plugins import PluginManager, activate
from flow.secrets.backends import BaseSecretsBackend
from flow.secrets.connection import Connection, accessor_context
from flow.secrets.database import save_connection
from flow.store.session import get_engine

CANARY = "canary-Pa55/w0rd@:%"


def test_uri_parts_are_percent_decoded_and_query_becomes_extra() -> None:
    conn = Connection.from_uri(
        "postgresql://us%40er:p%40ss%2Fw%3Ard@db.example.com:6432/my%20db?sslmode=require",
        conn_id="warehouse")
    assert (conn.conn_type, conn.login, conn.password, conn.host, conn.port, conn.schema) == (
        "postgres", "us@er", "p@ss/w:rd", "db.example.com", 6432, "my db")
    assert conn.extra_dejson == {"sslmode": "require"}


def test_extra_json_in_uri_and_get_uri_round_trip() -> None:
    conn = Connection("api", "http", host="example.com", login="me", password=CANARY, port=8443,
                      schema="v1", extra={"retries": 3, "headers": {"X-A": "b"}})
    again = Connection.from_uri(conn.get_uri(), conn_id="api")
    assert again == conn
    assert "__extra__=" in conn.get_uri()


def test_a_bad_uri_error_does_not_show_the_password() -> None:
    with pytest.raises(ValueError) as info:
        Connection.from_uri("postgres://user:hunter22@host:notaport/db", conn_id="x")
    assert "hunter22" not in str(info.value)
    assert "'x'" in str(info.value)


def test_env_connection_as_uri(events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_MY_DB", "mysql://root:secretpw@127.0.0.1:3306/test")
    conn = Connection.get("my_db")
    assert (conn.conn_type, conn.host, conn.password, conn.schema) == (
        "mysql", "127.0.0.1", "secretpw", "test")


def test_env_connection_as_json(events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_API", json.dumps(
        {"conn_type": "http", "host": "example.com", "password": "tok3n-value",
         "extra": {"verify": False}}))
    conn = Connection.get("api")
    assert (conn.conn_type, conn.host, conn.password) == ("http", "example.com", "tok3n-value")
    assert conn.extra_dejson == {"verify": False}


def test_bad_env_json_names_the_variable(events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_BROKEN", "{not json")
    with pytest.raises(ValueError, match="FLOW_CONN_BROKEN: not valid JSON"):
        Connection.get("broken")


def test_environment_wins_over_the_database(db_url: str, events: object,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    save_connection(Connection("dup", "http", host="from-db"))
    assert Connection.get("dup").host == "from-db"
    monkeypatch.setenv("FLOW_CONN_DUP", "http://from-env")
    assert Connection.get("dup").host == "from-env"


def test_unknown_conn_id_names_the_id_and_every_backend(db_url: str, events: object) -> None:
    with pytest.raises(ConnectionNotFound) as info:
        Connection.get("no_such_conn")
    message = str(info.value)
    assert "'no_such_conn'" in message
    assert "environment" in message and "database" in message
    assert "FLOW_CONN_NO_SUCH_CONN" in message


def test_password_and_extra_are_never_plain_text_in_the_database(db_url: str,
                                                                  events: object) -> None:
    save_connection(Connection("canary", "postgres", host="h", login="u", password=CANARY,
                               extra={"private_key": "canary-extra-secret"}))
    with get_engine().connect() as connection:
        row = connection.execute(text(
            "SELECT password, extra FROM connection WHERE conn_id = 'canary'")).one()
    assert CANARY not in row.password and "canary-extra-secret" not in row.extra
    assert row.password.startswith("gAAAA")  # a Fernet token
    loaded = Connection.get("canary")
    assert loaded.password == CANARY
    assert loaded.extra_dejson == {"private_key": "canary-extra-secret"}


def test_storing_a_password_without_a_fernet_key_is_refused(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW__CORE__FERNET_KEY")
    with pytest.raises(FernetKeyMissing) as info:
        save_connection(Connection("nokey", "http", password="secret-value"))
    assert "flow config generate-fernet-key" in str(info.value)
    assert "FLOW__CORE__FERNET_KEY" in str(info.value)
    with get_engine().connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM connection")).scalar() == 0


def test_a_connection_without_secrets_needs_no_key(db_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW__CORE__FERNET_KEY")
    save_connection(Connection("public", "http", host="example.com"))


def test_access_event_names_the_accessor(db_url: str, events: object,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_SEEN", "http://example.com")
    accessor = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
    with accessor_context(accessor):
        Connection.get("seen")
    assert events.accessed == [("seen", accessor)]  # type: ignore[attr-defined]


class VaultLikeBackend(BaseSecretsBackend):
    def get_connection(self, conn_id: str) -> Connection | None:
        if conn_id == "from_plugin":
            return Connection(conn_id, "http", host="vault.example.com", password="vault-pw")
        return None

    def get_variable(self, key: str) -> str | None:
        return "plugin value" if key == "from_plugin" else None


class VaultPlugin:
    @staticmethod
    def flow_secrets_backends() -> list[object]:
        from flow.records import SecretsBackendSpec

        return [SecretsBackendSpec("vaultlike", VaultLikeBackend)]


def test_plugin_backend_is_searched_after_the_configured_ones(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow.secrets.variable import Variable

    monkeypatch.setenv("FLOW__CORE__SECRETS_BACKENDS", "environment,database,vaultlike")
    manager = PluginManager().load()
    manager.register(VaultPlugin(), "vault-plugin")
    with activate(manager):
        assert Connection.get("from_plugin").host == "vault.example.com"
        assert Variable.get("from_plugin") == "plugin value"
        with pytest.raises(ConnectionNotFound, match="vaultlike"):
            Connection.get("elsewhere")
