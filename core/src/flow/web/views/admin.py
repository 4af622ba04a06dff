"""Connections, variables, pools, plugins, the event log and users."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from flow.secrets import database as secrets_db
from flow.store import models
from flow.web import data, serializers
from flow.web.api import admin as api_admin
from flow.web.db import db
from flow.web.errors import ApiError
from flow.web.security import access, current_user
from flow.web.views import ui_blueprint

CONNECTION_FIELDS = ("conn_type", "description", "host", "schema", "login", "port", "extra")


# ---------------------------------------------------------------------------------- connections

@ui_blueprint.get("/connections")
@access(read="viewer")
def connection_list() -> Any:
    connections = [serializers.connection(c) for c in secrets_db.list_connections()]
    return render_template("connections.html", connections=connections)


def _connection_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    import json

    fields: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in CONNECTION_FIELDS:
        fields[name] = form.get(name, "").strip() or None
    if not fields["conn_type"]:
        errors["conn_type"] = "a connection type is required"
    if fields["port"]:
        try:
            fields["port"] = int(fields["port"])
            if not 0 <= fields["port"] <= 65535:
                raise ValueError
        except ValueError:
            errors["port"] = "the port is a number from 0 to 65535"
    if fields["extra"]:
        try:
            fields["extra"] = json.loads(fields["extra"])
            if not isinstance(fields["extra"], dict):
                raise ValueError
        except ValueError:
            errors["extra"] = 'extra is a JSON object, e.g. {"timeout": 10}'
    password = form.get("password", "")
    if password:  # write-only: an empty field keeps the stored password
        fields["password"] = password
    if form.get("clear_password") == "on":
        fields["password"] = None
    return fields, errors


@ui_blueprint.route("/connections/new", methods=["GET", "POST"])
@access(read="admin", write="admin")
def connection_new() -> Any:
    import re

    values: dict[str, Any] = {"conn_id": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _connection_form(request.form)
        conn_id = request.form.get("conn_id", "").strip()
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,250}", conn_id):
            errors["conn_id"] = "use letters, digits, _ . and - (at most 250)"
        values = {**fields, "conn_id": conn_id, "password": None}
        if not errors:
            try:
                api_admin.save_connection(conn_id, fields, create=True, source="ui")
            except ApiError as err:
                errors["conn_id"] = err.detail
            else:
                flash(f"Connection {conn_id} created.", "success")
                return redirect(url_for("ui.connection_list"))
    return render_template("connection_form.html", values=values, errors=errors, new=True,
                           has_password=False), (400 if errors else 200)


@ui_blueprint.route("/connections/<conn_id>/edit", methods=["GET", "POST"])
@access(read="admin", write="admin")
def connection_edit(conn_id: str) -> Any:
    stored = secrets_db.load_connection(conn_id)
    if stored is None:
        raise ApiError(404, "Not Found", f"connection {conn_id!r} does not exist")
    values = serializers.connection(stored)
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _connection_form(request.form)
        if not errors:
            api_admin.save_connection(conn_id, fields, create=False, source="ui")
            flash(f"Connection {conn_id} saved.", "success")
            return redirect(url_for("ui.connection_list"))
        values = {**fields, "conn_id": conn_id}
    return render_template("connection_form.html", values=values, errors=errors, new=False,
                           has_password=bool(stored.password)), (400 if errors else 200)


@ui_blueprint.post("/connections/<conn_id>/delete")
@access(read="admin", write="admin")
def connection_delete(conn_id: str) -> Any:
    if secrets_db.delete_connection(conn_id, session=db()):
        _record("connection.delete", conn_id)
        db().commit()
        flash(f"Connection {conn_id} deleted.", "success")
    return redirect(url_for("ui.connection_list"))


@ui_blueprint.post("/connections/<conn_id>/test")
@access(read="admin", write="admin")
def connection_test(conn_id: str) -> Any:
    ok, message = api_admin.test_stored_connection(conn_id, "ui")
    flash(f"Connection {conn_id}: {'OK' if ok else 'failed'} — {message}",
          "success" if ok else "error")
    return redirect(url_for("ui.connection_list"))


def _record(action: str, target: str, details: dict[str, Any] | None = None) -> None:
    """Record the action in the request's session: commit after it (a plugin may refuse it)."""
    from flow.web.api.common import record

    record(action, target, details, source="ui")


# ------------------------------------------------------------------------------------ variables

@ui_blueprint.get("/variables")
@access(read="viewer")
def variable_list() -> Any:
    variables = [serializers.variable(v.key, v.value, v.description)
                 for v in secrets_db.list_variables()]
    return render_template("variables.html", variables=variables)


@ui_blueprint.route("/variables/new", methods=["GET", "POST"])
@ui_blueprint.route("/variables/<key>/edit", methods=["GET", "POST"], endpoint="variable_edit")
@access(read="op", write="op")
def variable_new(key: str | None = None) -> Any:
    from flow.secrets.masking import is_sensitive_name

    stored = secrets_db.load_variable(key) if key else None
    if key and stored is None:
        raise ApiError(404, "Not Found", f"variable {key!r} does not exist")
    error = None
    if request.method == "POST":
        new_key = key or request.form.get("key", "").strip()
        value = request.form.get("val", "")
        if not new_key:
            error = "a variable needs a key"
        elif key and is_sensitive_name(key) and value == "":
            value = stored or ""  # a masked value left empty keeps the stored one
        if error is None:
            replaced = secrets_db.save_variable(new_key, value,
                                                request.form.get("description") or None,
                                                session=db())
            _record("variable.update" if replaced else "variable.create", new_key)
            db().commit()
            flash(f"Variable {new_key} saved.", "success")
            return redirect(url_for("ui.variable_list"))
    shown = "" if key is None or is_sensitive_name(key) else stored
    return render_template("variable_form.html", key=key, value=shown, error=error,
                           masked=bool(key and is_sensitive_name(key))), (400 if error else 200)


@ui_blueprint.post("/variables/<key>/delete")
@access(read="op", write="op")
def variable_delete(key: str) -> Any:
    if secrets_db.delete_variable(key, session=db()):
        _record("variable.delete", key)
        db().commit()
        flash(f"Variable {key} deleted.", "success")
    return redirect(url_for("ui.variable_list"))


# ---------------------------------------------------------------------------------------- pools

@ui_blueprint.route("/pools", methods=["GET", "POST"])
@access(read="viewer", write="op")
def pool_list() -> Any:
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        try:
            slots = int(request.form.get("slots", ""))
            if not name or slots < 0:
                raise ValueError
        except ValueError:
            flash("A pool needs a name and a number of slots ≥ 0.", "error")
        else:
            exists = db().scalar(select(models.Pool).where(models.Pool.name == name))
            api_admin.save_pool(name, slots, request.form.get("description") or None,
                                create=exists is None, source="ui")
            flash(f"Pool {name} saved.", "success")
        return redirect(url_for("ui.pool_list"))
    usage = data.pool_usage(db())
    pools = [data.pool_dict(p, usage) for p in db().scalars(
        select(models.Pool).order_by(models.Pool.name))]
    return render_template("pools.html", pools=pools)


@ui_blueprint.post("/pools/<name>/delete")
@access(read="op", write="op")
def pool_delete(name: str) -> Any:
    try:
        api_admin.delete_pool_named(name, "ui")
        flash(f"Pool {name} deleted.", "success")
    except ApiError as err:
        flash(err.detail, "error")
    return redirect(url_for("ui.pool_list"))


# ------------------------------------------------------------------------- plugins, events, users

@ui_blueprint.get("/plugins")
@access(read="viewer")
def plugin_list() -> Any:
    return render_template("plugins.html",
                           plugins=current_app.extensions["flow.plugins"].plugins())


@ui_blueprint.get("/events")
@access(read="viewer")
def event_log() -> Any:
    from flow.web.api.common import int_arg, paginate

    offset = int_arg("offset", 0, minimum=0) or 0
    statement = select(models.EventLog).order_by(models.EventLog.id.desc())
    for name in ("actor", "action", "dag_id"):
        if request.args.get(name):
            statement = statement.where(getattr(models.EventLog, name) == request.args[name])
    events, total = paginate(db(), statement, 100, offset)
    return render_template("events.html", events=events, total=total, offset=offset,
                           filters={n: request.args.get(n, "") for n in
                                    ("actor", "action", "dag_id")})


@ui_blueprint.route("/users", methods=["GET", "POST"])
@access(read="admin", write="admin")
def user_list() -> Any:
    from flow.web.users import ROLES, UserError, create_user

    if request.method == "POST":
        try:
            row = create_user(db(), request.form.get("username", ""),
                              request.form.get("password", ""), request.form.get("role", ""),
                              request.form.get("email") or None)
            _record("user.create", row.username, {"role": row.role})
            db().commit()
            flash(f"User {row.username} created.", "success")
        except UserError as err:
            db().rollback()
            flash(str(err), "error")
        return redirect(url_for("ui.user_list"))
    users = list(db().scalars(select(models.User).order_by(models.User.username)))
    return render_template("users.html", users=users, roles=ROLES)


@ui_blueprint.post("/users/<username>/delete")
@access(read="admin", write="admin")
def user_delete(username: str) -> Any:
    from flow.web.users import UserError, delete_user

    user = current_user()
    if user is not None and user.username == username:
        flash("You cannot delete yourself.", "error")
        return redirect(url_for("ui.user_list"))
    try:
        delete_user(db(), username)
        _record("user.delete", username)
        db().commit()
        flash(f"User {username} deleted.", "success")
    except UserError as err:
        flash(str(err), "error")
    return redirect(url_for("ui.user_list"))
