"""Task instances: list, get, clear, set state, tries, logs and XComs."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from flow.store import models
from flow.web import data, serializers
from flow.web.api import routes
from flow.web.api.common import action_kwargs, body, int_arg, page, paginate
from flow.web.api.registry import QueryParam
from flow.web.api.schemas import BODIES, TI_STATES, ref
from flow.web.db import db

MAX_MAP_INDEX = 2**31 - 1
TIS = "/dags/<dag_id>/dagRuns/<run_id>/taskInstances"
MAP_INDEX = QueryParam("map_index", {"type": "integer", "minimum": -1, "maximum": MAX_MAP_INDEX,
                                     "default": -1},
                       "the map index of a mapped task (-1: not mapped)")


def _map_index() -> int:
    value = int_arg("map_index", -1, minimum=-1, maximum=MAX_MAP_INDEX)
    assert value is not None
    return value


@routes.operation("GET", TIS, summary="List the task instances of a DAG run",
                    tag="TaskInstance", paginated=True, query=(
                        QueryParam("state", {"enum": [*TI_STATES, "none"]},
                                   "only task instances in this state"),
                        QueryParam("task_id", {"type": "string"}, "only this task")),
                    response=ref("TaskInstanceCollection"))
def list_task_instances(dag_id: str, run_id: str) -> Any:
    limit, offset = page()
    data.get_run(db(), dag_id, run_id)
    statement = select(models.TaskInstance).where(
        models.TaskInstance.dag_id == dag_id, models.TaskInstance.run_id == run_id).order_by(
        models.TaskInstance.task_id, models.TaskInstance.map_index)
    state = request.args.get("state")
    if state == "none":
        statement = statement.where(models.TaskInstance.state.is_(None))
    elif state:
        statement = statement.where(models.TaskInstance.state == state)
    if request.args.get("task_id"):
        statement = statement.where(models.TaskInstance.task_id == request.args["task_id"])
    rows, total = paginate(db(), statement, limit, offset)
    return jsonify(task_instances=[serializers.task_instance(r) for r in rows],
                   total_entries=total)


@routes.operation("GET", TIS + "/<task_id>", summary="Get a task instance",
                    tag="TaskInstance", query=(MAP_INDEX,), response=ref("TaskInstance"))
def get_task_instance(dag_id: str, run_id: str, task_id: str) -> Any:
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, _map_index())
    return jsonify(serializers.task_instance(ti))


@routes.operation("PATCH", TIS + "/<task_id>", summary="Mark a task instance success or "
                    "failed", tag="TaskInstance", role="op", body=BODIES["TaskInstanceState"],
                    response=ref("TaskInstance"))
def set_task_instance_state(dag_id: str, run_id: str, task_id: str) -> Any:
    from flow.scheduling import actions

    request_body = body(BODIES["TaskInstanceState"])
    map_index = int(request_body.get("map_index", -1))
    data.get_task_instance(db(), dag_id, run_id, task_id, map_index)
    actions.set_task_instance_state(dag_id, run_id, task_id, request_body["state"],
                                    map_index=map_index, **action_kwargs())
    db().expire_all()
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, map_index)
    return jsonify(serializers.task_instance(ti))


@routes.operation("POST", "/dags/<dag_id>/dagRuns/<run_id>/clearTaskInstances",
                    summary="Clear task instances (with downstream, upstream, failed only)",
                    tag="TaskInstance", role="op", body=BODIES["ClearTaskInstances"],
                    response=ref("ClearResult"))
def clear_task_instances(dag_id: str, run_id: str) -> Any:
    from flow.scheduling import actions

    options = body(BODIES["ClearTaskInstances"])
    data.get_run(db(), dag_id, run_id)
    cleared = actions.clear_task_instances(
        dag_id, run_id, options.get("task_ids"), map_indexes=options.get("map_indexes"),
        downstream=bool(options.get("downstream")), upstream=bool(options.get("upstream")),
        only_failed=bool(options.get("only_failed")), dry_run=bool(options.get("dry_run")),
        **action_kwargs())
    items = [serializers.task_instance(ti) for ti in cleared or []]
    return jsonify(task_instances=items, total_entries=len(items))


@routes.operation("GET", TIS + "/<task_id>/tries", summary="Every try of a task instance",
                    tag="TaskInstance", query=(MAP_INDEX,), response=ref("TryCollection"))
def list_tries(dag_id: str, run_id: str, task_id: str) -> Any:
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, _map_index())
    tries = [serializers.task_try(t) for t in data.tries_of(db(), ti)]
    return jsonify(tries=tries, total_entries=len(tries))


@routes.operation("GET", TIS + "/<task_id>/logs/<int:try_number>",
                    summary="A piece of one try's log; pass continuation_token for the rest",
                    tag="TaskInstance", query=(MAP_INDEX, QueryParam(
                        "token", {"type": "string"},
                        "the continuation_token of the previous answer")),
                    response=ref("Log"))
def get_log(dag_id: str, run_id: str, task_id: str, try_number: int) -> Any:
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, _map_index())
    chunk = data.read_log(ti, try_number, request.args.get("token"))
    return jsonify(content=chunk.content, continuation_token=chunk.continuation_token,
                   end_of_log=chunk.end_of_log, try_number=try_number)


@routes.operation("GET", TIS + "/<task_id>/xcomEntries", summary="XComs a task instance "
                    "pushed", tag="XCom", paginated=True, query=(
                        MAP_INDEX, QueryParam("key", {"type": "string"}, "only this key")),
                    response=ref("XComCollection"))
def list_xcoms(dag_id: str, run_id: str, task_id: str) -> Any:
    from flow import serialization

    limit, offset = page()
    ti = data.get_task_instance(db(), dag_id, run_id, task_id, _map_index())
    statement = select(models.XComModel).where(
        models.XComModel.task_instance_id == ti.id).order_by(models.XComModel.key)
    if request.args.get("key"):
        statement = statement.where(models.XComModel.key == request.args["key"])
    rows, total = paginate(db(), statement, limit, offset)
    entries = []
    for row in rows:
        try:  # JSON as stored, with flow's tagged types decoded for display
            value: Any = _jsonable(serialization.loads(row.value))
        except Exception:
            value = row.value
        entries.append({"dag_id": row.dag_id, "run_id": row.run_id, "task_id": row.task_id,
                        "map_index": row.map_index, "key": row.key, "value": value,
                        "timestamp": serializers.iso(row.timestamp)})
    return jsonify(xcom_entries=entries, total_entries=total)


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)
