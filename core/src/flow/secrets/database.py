"""Connections and variables in the metadata database; secrets go in as Fernet tokens only."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flow.secrets import fernet
from flow.secrets.connection import Connection
from flow.store.models import ConnectionModel, VariableModel
from flow.store.session import session_scope


class AlreadyExists(ValueError):
    """A connection id or variable key that is already stored."""


@dataclass
class StoredVariable:
    key: str
    value: str
    description: str | None


def _session(session: Session | None) -> contextlib.AbstractContextManager[Session]:
    """The caller's session as is, or a new one that commits at the end of the block."""
    return contextlib.nullcontext(session) if session is not None else session_scope()


# ---------------------------------------------------------------------------------- connections

def _to_row(connection: Connection, row: ConnectionModel) -> None:
    row.conn_type = connection.conn_type
    row.description = connection.description
    row.host = connection.host
    row.schema = connection.schema
    row.login = connection.login
    row.port = connection.port
    row.password = fernet.encrypt(connection.password) if connection.password else None
    row.extra = fernet.encrypt(connection.extra) if connection.extra else None


def _from_row(row: ConnectionModel) -> Connection:
    what = f"connection {row.conn_id!r}"
    return Connection(
        conn_id=row.conn_id, conn_type=row.conn_type, description=row.description,
        host=row.host, schema=row.schema, login=row.login, port=row.port,
        password=fernet.decrypt(row.password, f"{what} password") if row.password else None,
        extra=fernet.decrypt(row.extra, f"{what} extra") if row.extra else None,
    )


def save_connection(connection: Connection, *, overwrite: bool = False,
                    session: Session | None = None) -> bool:
    """Store ``connection``; returns True when it replaced one. :class:`AlreadyExists` if it
    exists and not ``overwrite``; :class:`FernetKeyMissing` for a secret with no key."""
    if connection.password or connection.extra:
        fernet.get_fernet()  # fail before touching the database
    with _session(session) as db:
        row = db.scalar(select(ConnectionModel).where(
            ConnectionModel.conn_id == connection.conn_id))
        if row is not None and not overwrite:
            raise AlreadyExists(f"connection {connection.conn_id!r} already exists; delete it "
                                "first or use --overwrite")
        replaced = row is not None
        if row is None:
            row = ConnectionModel(conn_id=connection.conn_id)
            db.add(row)
        _to_row(connection, row)
        db.flush()
        return replaced


def load_connection(conn_id: str, *, session: Session | None = None) -> Connection | None:
    with _session(session) as db:
        row = db.scalar(select(ConnectionModel).where(ConnectionModel.conn_id == conn_id))
        return _from_row(row) if row is not None else None


def list_connections(*, session: Session | None = None) -> list[Connection]:
    with _session(session) as db:
        rows = db.scalars(select(ConnectionModel).order_by(ConnectionModel.conn_id)).all()
        return [_from_row(row) for row in rows]


def delete_connection(conn_id: str, *, session: Session | None = None) -> bool:
    with _session(session) as db:
        result = db.execute(delete(ConnectionModel).where(ConnectionModel.conn_id == conn_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ variables

def save_variable(key: str, value: str, description: str | None = None, *,
                  session: Session | None = None) -> bool:
    """Store (or replace) variable ``key``; its value as a Fernet token. True if replaced."""
    if not key:
        raise ValueError("a variable needs a non-empty key")
    token = fernet.encrypt(value)
    with _session(session) as db:
        row = db.scalar(select(VariableModel).where(VariableModel.key == key))
        replaced = row is not None
        if row is None:
            row = VariableModel(key=key)
            db.add(row)
        row.val = token
        row.description = description
        db.flush()
        return replaced


def load_variable(key: str, *, session: Session | None = None) -> str | None:
    with _session(session) as db:
        row = db.scalar(select(VariableModel).where(VariableModel.key == key))
        if row is None:
            return None
        return fernet.decrypt(row.val, f"variable {key!r}")


def list_variables(*, session: Session | None = None) -> list[StoredVariable]:
    with _session(session) as db:
        rows = db.scalars(select(VariableModel).order_by(VariableModel.key)).all()
        return [StoredVariable(row.key, fernet.decrypt(row.val, f"variable {row.key!r}"),
                               row.description) for row in rows]


def delete_variable(key: str, *, session: Session | None = None) -> bool:
    with _session(session) as db:
        result = db.execute(delete(VariableModel).where(VariableModel.key == key))
        return bool(result.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- rotation

def rotate_fernet_key(*, session: Session | None = None) -> int:
    """Re-encrypt every stored secret with the first key of ``[core] fernet_key``.

    Returns how many values were re-encrypted. All or nothing: one value that no configured key
    decrypts aborts the whole rotation.
    """
    count = 0
    with _session(session) as db:
        for row in db.scalars(select(ConnectionModel)).all():
            what = f"connection {row.conn_id!r}"
            if row.password:
                row.password = fernet.rotate(row.password, f"{what} password")
                count += 1
            if row.extra:
                row.extra = fernet.rotate(row.extra, f"{what} extra")
                count += 1
        for variable in db.scalars(select(VariableModel)).all():
            variable.val = fernet.rotate(variable.val, f"variable {variable.key!r}")
            count += 1
        db.flush()
    return count
