"""Variables in the database, and Fernet key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from flow.exceptions import FernetKeyMissing, VariableNotFound
from flow.secrets.connection import Connection
from flow.secrets.database import load_connection, rotate_fernet_key, save_connection
from flow.secrets.fernet import FernetDecryptError
from flow.secrets.variable import Variable
from flow.store.session import get_engine


def test_variable_value_is_stored_encrypted_and_read_back(db_url: str, events: object) -> None:
    Variable.set("plain_key_name", "canary-variable-value", description="for a test")
    with get_engine().connect() as connection:
        stored = connection.execute(text("SELECT val FROM variable")).scalar()
    assert "canary-variable-value" not in stored
    assert Variable.get("plain_key_name") == "canary-variable-value"


def test_json_variable_and_default_and_not_found(db_url: str, events: object) -> None:
    Variable.set("settings", {"retries": 3}, serialize_json=True)
    assert Variable.get("settings", deserialize_json=True) == {"retries": 3}
    assert Variable.get("missing", default=None) is None
    with pytest.raises(VariableNotFound, match=r"'missing'.*FLOW_VAR_MISSING"):
        Variable.get("missing")
    assert Variable.delete("settings") is True
    assert Variable.delete("settings") is False


def test_environment_variable_wins(db_url: str, events: object,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    Variable.set("region", "from-db")
    monkeypatch.setenv("FLOW_VAR_REGION", "from-env")
    assert Variable.get("region") == "from-env"


def test_setting_a_variable_without_a_key_is_refused(db_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOW__CORE__FERNET_KEY")
    with pytest.raises(FernetKeyMissing, match="generate-fernet-key"):
        Variable.set("anything", "value")


def test_rotation_re_encrypts_with_the_new_key_so_the_old_one_can_go(
        db_url: str, events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    old_key = os.environ["FLOW__CORE__FERNET_KEY"]
    new_key = Fernet.generate_key().decode()
    save_connection(Connection("db", "postgres", password="pw-rotated", extra={"a": "b"}))
    Variable.set("v", "value-rotated")

    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", new_key)
    with pytest.raises(FernetDecryptError, match="connection 'db' password"):
        load_connection("db")

    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", f"{new_key},{old_key}")
    assert rotate_fernet_key() == 3

    monkeypatch.setenv("FLOW__CORE__FERNET_KEY", new_key)
    loaded = load_connection("db")
    assert loaded is not None and loaded.password == "pw-rotated"
    assert Variable.get("v") == "value-rotated"
