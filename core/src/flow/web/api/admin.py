"""Connections (password write-only), variables (sensitive values masked), pools, plugins,
the event log and users."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, jsonify, request
from sqlalchemy import select

from flow.secrets import database as secrets_db
from flow.secrets.connection import Connection
from flow.store import models
from flow.web import data, serializers
from flow.web.api import routes
from flow.web.api.common import actor, body, page, paginate, record
from flow.web.api.registry import QueryParam
from flow.web.api.schemas import BODIES, ref
from flow.web.db import db
from flow.web.errors import ApiError

STR = {"type": "string"}


# ---------------------------------------------------------------------------------- connections

def save_connection(conn_id: str, fields: dict[str, Any], *, create: bool, source: str) -> None:
    """Create or update a stored connection; an absent password keeps the stored one."""
    existing = secrets_db.load_connection(conn_id)
    if create and existing is not None:
        raise ApiError(409, "Conflict", f"connection {conn_id!r} already exists; edit it "
                                        "instead")
    if not create and existing is None:
        raise ApiError(404, "Not Found", f"connection {conn_id!r} does not exist")
    merged = existing.to_dict(reveal=True) if existing is not None else {}
    merged.pop("conn_id", None)
    merged.update({k: v for k, v in fields.items() if k != "conn_id"})
    extra = merged.get("extra")
    merged["extra"] = json.dumps(extra) if isinstance(extra, dict) else extra
    connection = Connection(conn_id=conn_id, **merged)
    secrets_db.save_connection(connection, overwrite=not create, session=db())
    changed = sorted(k for k in fields if k != "conn_id")
    record("connection.create" if create else "connection.update", conn_id,
           {"conn_type": connection.conn_type, "fields": changed}, source=source)
    db().commit()


@routes.operation("GET", "/connections", summary="List connections (passwords are never "
                    "returned)", tag="Connection", paginated=True,
                    query=(QueryParam("conn_type", STR, "only this type"),),
                    response=ref("ConnectionCollection"))
def list_connections() -> Any:
    limit, offset = page()
    statement = select(models.ConnectionModel.conn_id).order_by(models.ConnectionModel.conn_id)
    if request.args.get("conn_type"):
        statement = statement.where(models.ConnectionModel.conn_type == request.args[
            "conn_type"])
    ids, total = paginate(db(), statement, limit, offset)
    items = [serializers.connection(c) for c in map(secrets_db.load_connection, ids) if c]
    return jsonify(connections=items, total_entries=total)


@routes.operation("POST", "/connections", summary="Create a connection", tag="Connection",
                    role="admin", body=BODIES["ConnectionBody"], response=ref("Connection"),
                    status=201)
def create_connection() -> Any:
    fields = body(BODIES["ConnectionBody"])
    save_connection(fields["conn_id"], fields, create=True, source="api")
    return jsonify(_connection(fields["conn_id"])), 201


def _connection(conn_id: str) -> dict[str, Any]:
    connection = secrets_db.load_connection(conn_id)
    if connection is None:
        raise ApiError(404, "Not Found", f"connection {conn_id!r} does not exist")
    return serializers.connection(connection)


@routes.operation("GET", "/connections/<conn_id>", summary="Get a connection",
                    tag="Connection", response=ref("Connection"))
def get_connection(conn_id: str) -> Any:
    return jsonify(_connection(conn_id))


@routes.operation("PATCH", "/connections/<conn_id>", summary="Change a connection; a "
                    "password not given is kept", tag="Connection", role="admin",
                    body=BODIES["ConnectionPatch"], response=ref("Connection"))
def patch_connection(conn_id: str) -> Any:
    save_connection(conn_id, body(BODIES["ConnectionPatch"]), create=False, source="api")
    return jsonify(_connection(conn_id))


@routes.operation("DELETE", "/connections/<conn_id>", summary="Delete a connection",
                    tag="Connection", role="admin", status=204)
def delete_connection(conn_id: str) -> Any:
    if not secrets_db.delete_connection(conn_id, session=db()):
        raise ApiError(404, "Not Found", f"connection {conn_id!r} does not exist")
    record("connection.delete", conn_id)
    db().commit()
    return "", 204


def test_stored_connection(conn_id: str, source: str) -> tuple[bool, str]:
    from flow.secrets.hooks import hook_for

    connection = secrets_db.load_connection(conn_id)
    if connection is None:
        raise ApiError(404, "Not Found", f"connection {conn_id!r} does not exist")
    hook = hook_for(connection, current_app.extensions["flow.plugins"])
    if hook is None:
        ok, message = False, (f"no installed plugin can test connections of type "
                              f"{connection.conn_type!r}")
    else:
        try:
            ok, message = hook.test_connection()
        except Exception as err:  # a plugin's hook failing is an answer, not a server error
            ok, message = False, f"{type(err).__name__}: {err}"
    from flow.secrets.masking import redact

    record("connection.test", conn_id, {"ok": ok}, source=source)
    db().commit()
    return ok, redact(message)


@routes.operation("POST", "/connections/<conn_id>/test", summary="Test a stored connection",
                    tag="Connection", role="admin", response=ref("ConnectionTest"))
def test_connection(conn_id: str) -> Any:
    ok, message = test_stored_connection(conn_id, "api")
    return jsonify(status=ok, message=message)


# ------------------------------------------------------------------------------------ variables

@routes.operation("GET", "/variables", summary="List variables (sensitive values masked)",
                    tag="Variable", paginated=True,
                    query=(QueryParam("key_pattern", STR, "part of the key"),),
                    response=ref("VariableCollection"))
def list_variables() -> Any:
    limit, offset = page()
    statement = select(models.VariableModel.key).order_by(models.VariableModel.key)
    if request.args.get("key_pattern"):
        statement = statement.where(models.VariableModel.key.contains(
            request.args["key_pattern"], autoescape=True))
    keys, total = paginate(db(), statement, limit, offset)
    return jsonify(variables=[_variable(k) for k in keys], total_entries=total)


def _variable(key: str) -> dict[str, Any]:
    row = db().scalar(select(models.VariableModel).where(models.VariableModel.key == key))
    if row is None:
        raise ApiError(404, "Not Found", f"variable {key!r} does not exist")
    value = secrets_db.load_variable(key, session=db()) or ""
    return serializers.variable(key, value, row.description)


@routes.operation("POST", "/variables", summary="Create a variable", tag="Variable",
                    role="op", body=BODIES["VariableBody"], response=ref("Variable"),
                    status=201)
def create_variable() -> Any:
    fields = body(BODIES["VariableBody"])
    if secrets_db.load_variable(fields["key"]) is not None:
        raise ApiError(409, "Conflict", f"variable {fields['key']!r} already exists; PATCH it")
    secrets_db.save_variable(fields["key"], fields["value"], fields.get("description"),
                             session=db())
    record("variable.create", fields["key"])
    db().commit()
    return jsonify(_variable(fields["key"])), 201


@routes.operation("GET", "/variables/<key>", summary="Get a variable", tag="Variable",
                    response=ref("Variable"))
def get_variable(key: str) -> Any:
    return jsonify(_variable(key))


@routes.operation("PATCH", "/variables/<key>", summary="Change a variable's value",
                    tag="Variable", role="op", body=BODIES["VariablePatch"],
                    response=ref("Variable"))
def patch_variable(key: str) -> Any:
    fields = body(BODIES["VariablePatch"])
    _variable(key)
    secrets_db.save_variable(key, fields["value"], fields.get("description"), session=db())
    record("variable.update", key)
    db().commit()
    db().expire_all()
    return jsonify(_variable(key))


@routes.operation("DELETE", "/variables/<key>", summary="Delete a variable", tag="Variable",
                    role="op", status=204)
def delete_variable(key: str) -> Any:
    if not secrets_db.delete_variable(key, session=db()):
        raise ApiError(404, "Not Found", f"variable {key!r} does not exist")
    record("variable.delete", key)
    db().commit()
    return "", 204


# ---------------------------------------------------------------------------------------- pools

@routes.operation("GET", "/pools", summary="List pools with their slot usage", tag="Pool",
                    paginated=True, query=(QueryParam("name_pattern", STR, "part of the name"),),
                    response=ref("PoolCollection"))
def list_pools() -> Any:
    limit, offset = page()
    statement = select(models.Pool).order_by(models.Pool.name)
    if request.args.get("name_pattern"):
        statement = statement.where(models.Pool.name.contains(request.args["name_pattern"],
                                                              autoescape=True))
    rows, total = paginate(db(), statement, limit, offset)
    usage = data.pool_usage(db())
    return jsonify(pools=[data.pool_dict(r, usage) for r in rows], total_entries=total)


def save_pool(name: str, slots: int | None, description: str | None, *, create: bool,
              source: str) -> models.Pool:
    row = db().scalar(select(models.Pool).where(models.Pool.name == name))
    if create and row is not None:
        raise ApiError(409, "Conflict", f"pool {name!r} already exists; edit it instead")
    if row is None:
        if not create:
            raise ApiError(404, "Not Found", f"pool {name!r} does not exist")
        row = models.Pool(name=name, slots=slots or 0)
        db().add(row)
    if slots is not None:
        row.slots = slots
    row.description = description
    db().flush()
    record("pool.create" if create else "pool.update", name, {"slots": row.slots},
           source=source)
    db().commit()
    return row


@routes.operation("POST", "/pools", summary="Create a pool", tag="Pool", role="op",
                    body=BODIES["PoolBody"], response=ref("Pool"), status=201)
def create_pool() -> Any:
    fields = body(BODIES["PoolBody"])
    row = save_pool(fields["name"], fields["slots"], fields.get("description"), create=True,
                    source="api")
    return jsonify(data.pool_dict(row, data.pool_usage(db()))), 201


@routes.operation("GET", "/pools/<name>", summary="Get a pool", tag="Pool",
                    response=ref("Pool"))
def get_pool(name: str) -> Any:
    return jsonify(data.pool_dict(data.get_pool(db(), name), data.pool_usage(db())))


@routes.operation("PATCH", "/pools/<name>", summary="Change a pool's slots or description",
                    tag="Pool", role="op", body=BODIES["PoolPatch"], response=ref("Pool"))
def patch_pool(name: str) -> Any:
    fields = body(BODIES["PoolPatch"])
    current = data.get_pool(db(), name)
    row = save_pool(name, fields.get("slots"), fields.get("description", current.description),
                    create=False, source="api")
    return jsonify(data.pool_dict(row, data.pool_usage(db())))


@routes.operation("DELETE", "/pools/<name>", summary="Delete a pool", tag="Pool", role="op",
                    status=204)
def delete_pool(name: str) -> Any:
    delete_pool_named(name, "api")
    return "", 204


def delete_pool_named(name: str, source: str) -> None:
    if name == "default_pool":
        raise ApiError(409, "Conflict", "default_pool cannot be deleted; change its slots")
    db().delete(data.get_pool(db(), name))
    db().flush()
    record("pool.delete", name, source=source)
    db().commit()


# -------------------------------------------------------------------------- plugins, events, users

@routes.operation("GET", "/plugins", summary="Installed plugins (what `flow plugins list` "
                    "shows)", tag="Plugin", paginated=True, response=ref("PluginCollection"))
def list_plugins() -> Any:
    limit, offset = page()
    infos = current_app.extensions["flow.plugins"].plugins()
    items = [{"name": i.name, "distribution": i.distribution, "version": i.version,
              "status": i.status, "reason": i.reason, "hooks": list(i.hooks),
              "builtin": i.builtin} for i in infos]
    return jsonify(plugins=items[offset:offset + limit], total_entries=len(items))


@routes.operation("GET", "/eventLogs", summary="What people and scripts did, newest first",
                    tag="EventLog", paginated=True, query=(
                        QueryParam("actor", STR, "only this user"),
                        QueryParam("action", STR, "only this action, e.g. dag.trigger"),
                        QueryParam("dag_id", STR, "only this DAG")),
                    response=ref("EventLogCollection"))
def list_event_logs() -> Any:
    limit, offset = page()
    statement = select(models.EventLog).order_by(models.EventLog.id.desc())
    for name in ("actor", "action", "dag_id"):
        if request.args.get(name):
            statement = statement.where(getattr(models.EventLog, name) == request.args[name])
    rows, total = paginate(db(), statement, limit, offset)
    return jsonify(event_logs=[serializers.event(r) for r in rows], total_entries=total)


@routes.operation("GET", "/users", summary="List users", tag="User", role="admin",
                    paginated=True, response=ref("UserCollection"))
def list_users() -> Any:
    limit, offset = page()
    rows, total = paginate(db(), select(models.User).order_by(models.User.username), limit,
                           offset)
    return jsonify(users=[serializers.user(r) for r in rows], total_entries=total)


@routes.operation("POST", "/users", summary="Create a user", tag="User", role="admin",
                    body=BODIES["UserBody"], response=ref("User"), status=201)
def create_user() -> Any:
    from flow.web.users import UserError
    from flow.web.users import create_user as make

    fields = body(BODIES["UserBody"])
    try:
        row = make(db(), fields["username"], fields["password"], fields["role"],
                   fields.get("email"))
    except UserError as err:
        raise ApiError(409, "Conflict", str(err)) from None
    record("user.create", row.username, {"role": row.role})
    db().commit()
    return jsonify(serializers.user(row)), 201


@routes.operation("DELETE", "/users/<username>", summary="Delete a user and their tokens",
                    tag="User", role="admin", status=204)
def delete_user(username: str) -> Any:
    from flow.web.users import UserError
    from flow.web.users import delete_user as remove

    if username == actor():
        raise ApiError(409, "Conflict", "you cannot delete yourself; ask another admin")
    try:
        remove(db(), username)
    except UserError as err:
        raise ApiError(404, "Not Found", str(err)) from None
    record("user.delete", username)
    db().commit()
    return "", 204
