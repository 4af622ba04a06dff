"""One DAG: grid, graph, Gantt chart, source code, details and run history."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from sqlalchemy import select

from flow.store import models
from flow.web import data, grid, serializers
from flow.web.db import db
from flow.web.security import access
from flow.web.views import ui_blueprint

GRID_RUNS = 25
RUN_PAGE = 50


def _selected_run(dag_id: str) -> models.DagRun | None:
    run_id = request.args.get("run_id")
    if run_id:
        return data.get_run(db(), dag_id, run_id)
    return db().scalar(select(models.DagRun).where(models.DagRun.dag_id == dag_id)
                       .order_by(models.DagRun.id.desc()).limit(1))


def _page(template: str, dag_id: str, tab: str, **context: Any) -> Any:
    dag = data.get_dag(db(), dag_id)
    return render_template(template, dag=dag, tab=tab, **context)


@ui_blueprint.get("/dags/<dag_id>")
@access(read="viewer")
def dag_grid(dag_id: str) -> Any:
    return _page("dag_grid.html", dag_id, "grid")


@ui_blueprint.get("/dags/<dag_id>/grid.json")
@access(read="viewer")
def dag_grid_data(dag_id: str) -> Any:
    data.get_dag(db(), dag_id)
    serialized = data.serialized_data(db(), dag_id)
    return jsonify(grid.grid_data(db(), dag_id, serialized, GRID_RUNS))


@ui_blueprint.get("/dags/<dag_id>/graph")
@access(read="viewer")
def dag_graph(dag_id: str) -> Any:
    from flow.web.graph import layout

    serialized = data.serialized_data(db(), dag_id)
    run = _selected_run(dag_id)
    states: dict[str, str | None] = {}
    if run is not None:
        by_task: dict[str, list[str | None]] = {}
        for task_id, state in db().execute(select(
                models.TaskInstance.task_id, models.TaskInstance.state).where(
                models.TaskInstance.dag_id == dag_id, models.TaskInstance.run_id == run.run_id)):
            by_task.setdefault(task_id, []).append(state)
        states = {task_id: grid.summarize(s) for task_id, s in by_task.items()}
    runs = _recent_runs(dag_id)
    return _page("dag_graph.html", dag_id, "graph", layout=layout(serialized, states), run=run,
                 runs=runs)


def _recent_runs(dag_id: str) -> list[models.DagRun]:
    return list(db().scalars(select(models.DagRun).where(models.DagRun.dag_id == dag_id)
                             .order_by(models.DagRun.id.desc()).limit(GRID_RUNS)))


@ui_blueprint.get("/dags/<dag_id>/gantt")
@access(read="viewer")
def dag_gantt(dag_id: str) -> Any:
    run = _selected_run(dag_id)
    bars: list[dict[str, Any]] = []
    width = 800
    if run is not None:
        tis = list(db().scalars(select(models.TaskInstance).where(
            models.TaskInstance.dag_id == dag_id, models.TaskInstance.run_id == run.run_id,
            models.TaskInstance.start_date.is_not(None)).order_by(
            models.TaskInstance.start_date)))
        if tis:
            start = min(t.start_date for t in tis if t.start_date)
            from flow.utils.timezone import utcnow

            end = max((t.end_date or utcnow()) for t in tis)
            span = max((end - start).total_seconds(), 0.001)
            for index, ti in enumerate(tis):
                assert ti.start_date is not None
                left = (ti.start_date - start).total_seconds() / span * width
                right = ((ti.end_date or utcnow()) - start).total_seconds() / span * width
                bars.append({"ti": ti, "y": index * 22, "x": round(left, 1),
                             "w": max(round(right - left, 1), 2)})
    return _page("dag_gantt.html", dag_id, "gantt", run=run, runs=_recent_runs(dag_id),
                 bars=bars, width=width)


@ui_blueprint.get("/dags/<dag_id>/code")
@access(read="viewer")
def dag_code(dag_id: str) -> Any:
    dag = data.get_dag(db(), dag_id)
    return _page("dag_code.html", dag_id, "code", source=data.dag_source(db(), dag.fileloc))


@ui_blueprint.get("/dags/<dag_id>/details")
@access(read="viewer")
def dag_details(dag_id: str) -> Any:
    import json

    serialized = data.serialized_data(db(), dag_id)
    return _page("dag_details.html", dag_id, "details", serialized=serialized,
                 params_json=json.dumps(serialized.get("params") or {}, indent=2),
                 default_args_json=json.dumps(serialized.get("default_args") or {}, indent=2))


@ui_blueprint.get("/dags/<dag_id>/runs")
@access(read="viewer")
def dag_runs(dag_id: str) -> Any:
    from flow.web.api.common import int_arg, paginate

    offset = int_arg("offset", 0, minimum=0) or 0
    statement = select(models.DagRun).where(models.DagRun.dag_id == dag_id).order_by(
        models.DagRun.id.desc())
    if request.args.get("state"):
        statement = statement.where(models.DagRun.state == request.args["state"])
    runs, total = paginate(db(), statement, RUN_PAGE, offset)
    return _page("dag_runs.html", dag_id, "runs", runs=runs, total=total, offset=offset,
                 page_size=RUN_PAGE)


@ui_blueprint.get("/dags/<dag_id>/runs.json")
@access(read="viewer")
def dag_runs_data(dag_id: str) -> Any:
    data.get_dag(db(), dag_id)
    runs = db().scalars(select(models.DagRun).where(models.DagRun.dag_id == dag_id)
                        .order_by(models.DagRun.id.desc()).limit(RUN_PAGE))
    items = [serializers.dag_run(r) for r in runs]
    return jsonify(dag_runs=items, in_progress=any(
        r["state"] in grid.ACTIVE_RUN_STATES for r in items))
