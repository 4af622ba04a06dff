"""DAGs: list, get, pause/unpause, source, import errors; plus /health and the document."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from flow.store import models
from flow.web import data, serializers
from flow.web.api import routes
from flow.web.api.common import action_kwargs, body, bool_arg, page, paginate
from flow.web.api.registry import QueryParam
from flow.web.api.schemas import BODIES, ref
from flow.web.db import db

STR = {"type": "string"}


@routes.operation("GET", "/dags", summary="List DAGs", tag="DAG", paginated=True, query=(
    QueryParam("dag_id_pattern", STR, "part of the DAG id"),
    QueryParam("tags", STR, "comma-separated tags; a DAG must have all of them"),
    QueryParam("owner", STR, "part of an owner's name"),
    QueryParam("paused", {"type": "boolean"}, "only paused (true) or unpaused (false) DAGs"),
    QueryParam("last_run_state", {"enum": ["queued", "running", "success", "failed"]},
               "the state of the DAG's latest run"),
    QueryParam("only_active", {"type": "boolean", "default": True},
               "hide DAGs whose file is gone")), response=ref("DagCollection"))
def list_dags() -> Any:
    limit, offset = page()
    tags = [t for t in request.args.get("tags", "").split(",") if t]
    active = bool_arg("only_active")
    statement = data.dag_statement(pattern=request.args.get("dag_id_pattern"), tags=tags,
                                   owner=request.args.get("owner"), paused=bool_arg("paused"),
                                   state=request.args.get("last_run_state") or None,
                                   only_active=True if active is None else active)
    rows, total = paginate(db(), statement, limit, offset)
    return jsonify(dags=[serializers.dag(r) for r in rows], total_entries=total)


@routes.operation("GET", "/dags/<dag_id>", summary="Get a DAG with its tasks and params",
                    tag="DAG", response=ref("DagDetail"))
def get_dag(dag_id: str) -> Any:
    row = data.get_dag(db(), dag_id)
    serialized = data.serialized_data(db(), dag_id)
    return jsonify({**serializers.dag(row), "params": serialized.get("params") or {},
                    "tasks": [serializers.task(t) for t in serialized.get("tasks", [])],
                    "timezone": serialized.get("timezone", "UTC"),
                    "catchup": bool(serialized.get("catchup")),
                    "start_date": serialized.get("start_date"),
                    "end_date": serialized.get("end_date"), "doc_md": serialized.get("doc_md")})


@routes.operation("PATCH", "/dags/<dag_id>", summary="Pause or unpause a DAG", tag="DAG",
                    role="op", body=BODIES["DagPatch"], response=ref("Dag"))
def patch_dag(dag_id: str) -> Any:
    from flow.scheduling import actions

    wanted = body(BODIES["DagPatch"])["is_paused"]
    data.get_dag(db(), dag_id)
    actions.set_paused(dag_id, wanted, **action_kwargs())
    db().expire_all()
    return jsonify(serializers.dag(data.get_dag(db(), dag_id)))


@routes.operation("GET", "/dags/<dag_id>/source", summary="The source code of a DAG's file",
                    tag="DAG", response=ref("DagSource"))
def get_dag_source(dag_id: str) -> Any:
    row = data.get_dag(db(), dag_id)
    source = data.dag_source(db(), row.fileloc)
    if source is None:
        from flow.web.errors import ApiError

        raise ApiError(404, "Not Found", f"the source of {row.fileloc} is not stored yet; "
                                         "wait for the DAG processor")
    return jsonify(dag_id=dag_id, fileloc=row.fileloc, source_code=source)


@routes.operation("GET", "/importErrors", summary="DAG files that failed to load",
                    tag="DAG", paginated=True, response=ref("ImportErrorCollection"))
def list_import_errors() -> Any:
    limit, offset = page()
    rows, total = paginate(db(), select(models.ImportError_).order_by(
        models.ImportError_.filename), limit, offset)
    return jsonify(import_errors=[serializers.import_error(r) for r in rows],
                   total_entries=total)


@routes.operation("GET", "/health", summary="Metadata database and scheduler health",
                    tag="Monitoring", public=True, response=ref("Health"))
def health() -> Any:
    from flow.store.session import session_scope

    document, status = data.health(session_scope)
    return jsonify(document), status


@routes.operation("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document",
                    tag="Monitoring", response={"type": "object"})
def openapi_document() -> Any:
    return jsonify(openapi())


def openapi() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        flow_version = version("flow-core")
    except PackageNotFoundError:
        flow_version = "0.0.0"
    return routes.openapi(flow_version)
