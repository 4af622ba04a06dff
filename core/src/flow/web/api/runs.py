"""DAG runs: list, get, trigger, clear, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from flow.store import models
from flow.web import data, serializers
from flow.web.api import routes
from flow.web.api.common import action_kwargs, body, page, paginate
from flow.web.api.registry import QueryParam
from flow.web.api.schemas import BODIES, RUN_STATES, ref
from flow.web.db import db
from flow.web.errors import ApiError

RUNS = "/dags/<dag_id>/dagRuns"


@routes.operation("GET", RUNS, summary="List the runs of a DAG, newest first", tag="DagRun",
                    paginated=True, query=(
                        QueryParam("state", {"enum": RUN_STATES}, "only runs in this state"),
                        QueryParam("run_type", {"enum": ["manual", "scheduled", "backfill"]},
                                   "only runs of this type")),
                    response=ref("DagRunCollection"))
def list_dag_runs(dag_id: str) -> Any:
    limit, offset = page()
    data.get_dag(db(), dag_id)
    statement = select(models.DagRun).where(models.DagRun.dag_id == dag_id).order_by(
        models.DagRun.id.desc())
    if request.args.get("state"):
        statement = statement.where(models.DagRun.state == request.args["state"])
    if request.args.get("run_type"):
        statement = statement.where(models.DagRun.run_type == request.args["run_type"])
    rows, total = paginate(db(), statement, limit, offset)
    return jsonify(dag_runs=[serializers.dag_run(r) for r in rows], total_entries=total)


@routes.operation("POST", RUNS, summary="Trigger a DAG run with conf", tag="DagRun",
                    role="op", body=BODIES["TriggerDagRun"], response=ref("DagRun"),
                    status=201)
def trigger_dag_run(dag_id: str) -> Any:
    from flow.scheduling import actions

    request_body = body(BODIES["TriggerDagRun"])
    data.get_dag(db(), dag_id)
    logical_date = None
    if request_body.get("logical_date"):
        logical_date = parse_datetime(request_body["logical_date"], "logical_date")
    run = actions.trigger_dag_run(dag_id, run_id=request_body.get("run_id"),
                                  logical_date=logical_date, conf=request_body.get("conf"),
                                  **action_kwargs())
    return jsonify(serializers.dag_run(data.get_run(db(), dag_id, run.run_id))), 201


def parse_datetime(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "Bad Request", f"{field}: {text!r} is not an ISO 8601 date-time "
                                           "(e.g. 2024-01-31T00:00:00+00:00)") from None
    if value.tzinfo is None:
        raise ApiError(400, "Bad Request", f"{field}: {text!r} has no timezone; add one "
                                           "(e.g. +00:00)")
    return value


@routes.operation("GET", RUNS + "/<run_id>", summary="Get a DAG run", tag="DagRun",
                    response=ref("DagRun"))
def get_dag_run(dag_id: str, run_id: str) -> Any:
    return jsonify(serializers.dag_run(data.get_run(db(), dag_id, run_id)))


@routes.operation("DELETE", RUNS + "/<run_id>", summary="Delete a DAG run and its task "
                    "instances", tag="DagRun", role="op", status=204)
def delete_dag_run(dag_id: str, run_id: str) -> Any:
    from flow.scheduling import actions

    data.get_run(db(), dag_id, run_id)
    actions.delete_dag_run(dag_id, run_id, **action_kwargs())
    return "", 204


@routes.operation("POST", RUNS + "/<run_id>/clear", summary="Clear a DAG run's task "
                    "instances so they run again", tag="DagRun", role="op",
                    body=BODIES["ClearDagRun"], response=ref("ClearResult"))
def clear_dag_run(dag_id: str, run_id: str) -> Any:
    from flow.scheduling import actions

    options = body(BODIES["ClearDagRun"])
    data.get_run(db(), dag_id, run_id)
    cleared = actions.clear_dag_run(dag_id, run_id, only_failed=bool(options.get("only_failed")),
                                    dry_run=bool(options.get("dry_run")), **action_kwargs())
    items = [serializers.task_instance(ti) for ti in cleared or []]
    return jsonify(task_instances=items, total_entries=len(items))
