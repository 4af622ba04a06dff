"""The DAG list (filters, pause toggle, recent runs, import errors) and the trigger form."""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, render_template, request, url_for

from flow.web import data
from flow.web.db import db
from flow.web.security import access
from flow.web.views import ui_blueprint
from flow.web.views.common import back, run_action

PAGE_SIZE = 100


@ui_blueprint.get("/dags")
@access(read="viewer")
def dag_list() -> Any:
    from flow.web.api.common import int_arg

    filters = {name: request.args.get(name, "").strip() for name in
               ("name", "tag", "owner", "state", "paused")}
    paused = {"paused": True, "active": False}.get(filters["paused"])
    statement = data.dag_statement(pattern=filters["name"] or None,
                                   tags=[filters["tag"]] if filters["tag"] else None,
                                   owner=filters["owner"] or None, paused=paused,
                                   state=filters["state"] or None)
    from flow.web.api.common import paginate

    offset = int_arg("offset", 0, minimum=0) or 0
    dags, total = paginate(db(), statement, PAGE_SIZE, offset)
    recent = data.recent_run_states(db(), [d.dag_id for d in dags])
    return render_template("dags.html", dags=dags, recent=recent, total=total, offset=offset,
                           page_size=PAGE_SIZE, filters=filters,
                           import_errors=data.import_errors(db()))


@ui_blueprint.post("/dags/<dag_id>/pause")
@access(read="op", write="op")
def dag_pause(dag_id: str) -> Any:
    from flow.scheduling import actions

    data.get_dag(db(), dag_id)
    paused = request.form.get("paused") == "true"
    run_action(actions.set_paused, dag_id, paused,
               success=f"DAG {dag_id} {'paused' if paused else 'unpaused'}.")
    return back(url_for("ui.dag_list"))


# ------------------------------------------------------------------------------ trigger form

def param_fields(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One form field per Param: its input kind from the JSON schema, its default."""
    fields = []
    for name, param in params.items():
        schema = param.get("schema") or {}
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if "enum" in schema:
            kind = "enum"
        default = param.get("default") if param.get("has_default", True) else None
        shown: str | bool
        if kind in {"array", "object"}:
            shown = json.dumps(default) if default is not None else ""
        elif kind == "boolean":
            shown = bool(default)
        else:
            shown = "" if default is None else str(default)
        fields.append({"name": name, "kind": kind, "value": shown,
                       "description": param.get("description") or "",
                       "enum": schema.get("enum", []), "required": not param.get(
                           "has_default", True), "schema": schema})
    return fields


def _parse_field(field: dict[str, Any], form: Any) -> Any:
    from flow.web.errors import ApiError

    kind, raw = field["kind"], form.get(f"param.{field['name']}", "")
    if kind == "boolean":
        return form.get(f"param.{field['name']}") == "on"
    if raw == "" and field["required"]:
        raise ApiError(400, "Bad Request", "a value is required")
    if raw == "":
        return None
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind in {"array", "object"}:
            return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Bad Request", f"{raw!r} is not a valid {kind}") from None
    return raw


def _validate(fields: list[dict[str, Any]], params: dict[str, Any], form: Any
              ) -> tuple[dict[str, Any], dict[str, str]]:
    from flow.authoring.params import Param
    from flow.exceptions import ParamValidationError
    from flow.web.errors import ApiError

    conf: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        try:
            value = _parse_field(field, form)
            if value is None and not field["required"]:
                continue
            Param.load(params[field["name"]]).resolve(value, field["name"])
            conf[field["name"]] = value
        except ApiError as err:
            errors[field["name"]] = err.detail
        except ParamValidationError as err:
            errors[field["name"]] = str(getattr(err, "message", err))
    return conf, errors


@ui_blueprint.route("/dags/<dag_id>/trigger", methods=["GET", "POST"])
@access(read="op", write="op")
def dag_trigger(dag_id: str) -> Any:
    dag = data.get_dag(db(), dag_id)
    params = data.serialized_data(db(), dag_id).get("params") or {}
    fields = param_fields(params)
    errors: dict[str, str] = {}
    run_id = ""
    if request.method == "POST":
        conf, errors = _validate(fields, params, request.form)
        run_id = request.form.get("run_id", "").strip()
        for field in fields:  # show what was typed, not the default
            if field["kind"] == "boolean":
                field["value"] = request.form.get(f"param.{field['name']}") == "on"
            else:
                field["value"] = request.form.get(f"param.{field['name']}", "")
        if not errors:
            from flow.scheduling import actions

            run = run_action(actions.trigger_dag_run, dag_id, run_id=run_id or None, conf=conf,
                             success=f"Triggered a run of {dag_id}.")
            if run is not None:
                return redirect(url_for("ui.dag_grid", dag_id=dag_id))
    return render_template("trigger.html", dag=dag, fields=fields, errors=errors,
                           run_id=run_id), (400 if errors else 200)
