"""One task instance: tries and their logs, rendered templates, XComs, history and actions."""

from __future__ import annotations

import json
from typing import Any

from flask import render_template, request, url_for
from sqlalchemy import select

from flow.store import models
from flow.web import data
from flow.web.db import db
from flow.web.security import access
from flow.web.views import ui_blueprint
from flow.web.views.common import back, run_action

TI_PATH = "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>"


def _map_index() -> int:
    from flow.web.api.common import int_arg

    value = int_arg("map_index", None, minimum=-1)
    if value is None:
        try:
            value = int(request.form.get("map_index", -1))
        except ValueError:
            value = -1
    return value


@ui_blueprint.get(TI_PATH)
@access(read="viewer")
def task_instance(dag_id: str, run_id: str, task_id: str) -> Any:
    from flow import serialization

    dag = data.get_dag(db(), dag_id)
    run = data.get_run(db(), dag_id, run_id)
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, _map_index())
    tries = data.tries_of(db(), ti)
    xcoms = []
    for row in db().scalars(select(models.XComModel).where(
            models.XComModel.task_instance_id == ti.id).order_by(models.XComModel.key)):
        try:
            value = repr(serialization.loads(row.value))
        except Exception:
            value = row.value
        xcoms.append((row.key, value))
    history = list(db().scalars(select(models.EventLog).where(
        models.EventLog.dag_id == dag_id, models.EventLog.run_id == run_id,
        models.EventLog.task_id == task_id).order_by(models.EventLog.id.desc()).limit(50)))
    rendered = json.dumps(ti.rendered_fields, indent=2, default=str) \
        if ti.rendered_fields else ""
    try_numbers = list(range(1, max(ti.try_number, 1) + 1))
    return render_template("task_instance.html", dag=dag, run=run, ti=ti, tries=tries,
                           try_numbers=try_numbers, xcoms=xcoms, history=history,
                           rendered=rendered)


@ui_blueprint.post(TI_PATH + "/clear")
@access(read="op", write="op")
def task_clear(dag_id: str, run_id: str, task_id: str) -> Any:
    from flow.scheduling import actions

    map_index = _map_index()
    data.get_task_instance(db(), dag_id, run_id, task_id, map_index)
    form = request.form
    run_action(actions.clear_task_instances, dag_id, run_id, [task_id],
               map_indexes=[map_index] if map_index >= 0 else None,
               downstream=form.get("downstream") == "on",
               upstream=form.get("upstream") == "on",
               only_failed=form.get("only_failed") == "on",
               success="Cleared the task instance.")
    return back(url_for("ui.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_id,
                        map_index=map_index))


@ui_blueprint.post(TI_PATH + "/mark")
@access(read="op", write="op")
def task_mark(dag_id: str, run_id: str, task_id: str) -> Any:
    from flow.scheduling import actions
    from flow.web.errors import ApiError

    map_index = _map_index()
    state = request.form.get("state", "")
    if state not in {"success", "failed"}:
        raise ApiError(400, "Bad Request", "state must be success or failed")
    data.get_task_instance(db(), dag_id, run_id, task_id, map_index)
    run_action(actions.set_task_instance_state, dag_id, run_id, task_id, state,
               map_index=map_index, success=f"Marked the task instance {state}.")
    return back(url_for("ui.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_id,
                        map_index=map_index))
