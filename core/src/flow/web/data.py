"""Reads shared by the UI and the API: DAGs, runs, task instances, logs, pools, health."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from flow.store import models
from flow.utils.timezone import utcnow
from flow.web.errors import ApiError

LOG_CHUNK = 256 * 1024  # bytes of log per answer; the continuation token fetches the rest


def get_dag(session: Session, dag_id: str) -> models.DagModel:
    row = session.get(models.DagModel, dag_id)
    if row is None:
        raise ApiError(404, "Not Found", f"DAG {dag_id!r} does not exist; the DAG list shows "
                                         "the DAGs flow has parsed")
    return row


def serialized_data(session: Session, dag_id: str) -> dict[str, Any]:
    data = session.scalar(select(models.SerializedDagModel.data).where(
        models.SerializedDagModel.dag_id == dag_id))
    if data is None:
        raise ApiError(404, "Not Found", f"DAG {dag_id!r} has no serialized form yet; wait for "
                                         "the DAG processor to parse its file")
    return dict(data)


def dag_source(session: Session, fileloc: str) -> str | None:
    return session.scalar(select(models.DagCodeModel.source_code).where(
        models.DagCodeModel.fileloc == fileloc))


def get_run(session: Session, dag_id: str, run_id: str) -> models.DagRun:
    row = session.scalar(select(models.DagRun).where(models.DagRun.dag_id == dag_id,
                                                     models.DagRun.run_id == run_id))
    if row is None:
        raise ApiError(404, "Not Found", f"DAG run {run_id!r} of DAG {dag_id!r} does not exist")
    return row


def get_task_instance(session: Session, dag_id: str, run_id: str, task_id: str,
                      map_index: int = -1) -> models.TaskInstance:
    row = session.scalar(select(models.TaskInstance).where(
        models.TaskInstance.dag_id == dag_id, models.TaskInstance.run_id == run_id,
        models.TaskInstance.task_id == task_id, models.TaskInstance.map_index == map_index))
    if row is None:
        where = f"task {task_id!r}" + (f" map index {map_index}" if map_index >= 0 else "")
        raise ApiError(404, "Not Found", f"{where} of run {run_id!r} of DAG {dag_id!r} "
                                         "has no task instance")
    return row


def tries_of(session: Session, ti: models.TaskInstance) -> list[models.TaskInstanceTry]:
    return list(session.scalars(select(models.TaskInstanceTry).where(
        models.TaskInstanceTry.task_instance_id == ti.id).order_by(
        models.TaskInstanceTry.try_number)))


def dag_statement(*, pattern: str | None = None, tags: list[str] | None = None,
                  owner: str | None = None, paused: bool | None = None,
                  state: str | None = None, only_active: bool = True) -> Any:
    """DAGs matching the list filters; ``state`` keeps DAGs whose latest run has it."""
    statement = select(models.DagModel).order_by(models.DagModel.dag_id)
    if only_active:
        statement = statement.where(models.DagModel.is_active.is_(True))
    if pattern:
        statement = statement.where(models.DagModel.dag_id.contains(pattern, autoescape=True))
    if owner:
        statement = statement.where(models.DagModel.owners.contains(owner, autoescape=True))
    if paused is not None:
        statement = statement.where(models.DagModel.is_paused.is_(paused))
    for tag in tags or []:
        # Tags are a JSON list; a quoted substring match works on every database.
        statement = statement.where(func.lower(_json_text(models.DagModel.tags)).contains(
            json.dumps(tag).lower(), autoescape=True))
    if state:
        latest = (select(models.DagRun.dag_id, func.max(models.DagRun.id).label("id"))
                  .group_by(models.DagRun.dag_id).subquery())
        statement = statement.join(latest, latest.c.dag_id == models.DagModel.dag_id).join(
            models.DagRun, and_(models.DagRun.id == latest.c.id,
                                models.DagRun.state == state))
    return statement


def _json_text(column: Any) -> Any:
    from sqlalchemy import String, cast

    return cast(column, String)


def recent_run_states(session: Session, dag_ids: list[str], per_dag: int = 10
                      ) -> dict[str, list[models.DagRun]]:
    """The latest ``per_dag`` runs of each DAG, newest first (one query for the whole page)."""
    if not dag_ids:
        return {}
    ranked = (select(models.DagRun.id, func.row_number().over(
        partition_by=models.DagRun.dag_id, order_by=models.DagRun.id.desc()).label("n"))
        .where(models.DagRun.dag_id.in_(dag_ids)).subquery())
    rows = session.scalars(select(models.DagRun).join(ranked, ranked.c.id == models.DagRun.id)
                           .where(ranked.c.n <= per_dag).order_by(models.DagRun.id.desc()))
    result: dict[str, list[models.DagRun]] = {dag_id: [] for dag_id in dag_ids}
    for run in rows:
        result[run.dag_id].append(run)
    return result


def import_errors(session: Session) -> list[models.ImportError_]:
    return list(session.scalars(select(models.ImportError_).order_by(
        models.ImportError_.filename)))


# ------------------------------------------------------------------------------------- logs

@dataclass(frozen=True)
class LogChunk:
    content: str
    continuation_token: str
    end_of_log: bool


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ApiError(400, "Bad Request", "the continuation token is not one this server "
                                           "gave; start again without it") from None
    if not isinstance(offset, int) or offset < 0:
        raise ApiError(400, "Bad Request", "the continuation token is malformed; start again "
                                           "without it")
    return offset


def read_log(ti: models.TaskInstance, try_number: int, token: str | None) -> LogChunk:
    """A piece of the log of one try, from where ``token`` left off."""
    from flow.config import load_config
    from flow.execution.logs import log_path

    if try_number < 1 or try_number > max(ti.try_number, 1):
        raise ApiError(404, "Not Found", f"task {ti.task_id!r} has no try {try_number}; its "
                                         f"tries are 1..{ti.try_number}")
    offset = decode_token(token)
    base = load_config().get("logging", "base_log_folder")
    path = log_path(base, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, try_number)
    still_writing = try_number == ti.try_number and ti.state in {"running", "queued",
                                                                   "scheduled", None}
    data = _read_from(path, offset)
    # Cut at the last whole line so a multi-byte character is never split between answers.
    if len(data) == LOG_CHUNK and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    new_offset = offset + len(data)
    at_end = len(data) < LOG_CHUNK
    return LogChunk(data.decode("utf-8", errors="replace"), encode_token(new_offset),
                    at_end and not still_writing)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(LOG_CHUNK)
    except FileNotFoundError:
        return b""


# ------------------------------------------------------------------------------------ pools

def pool_usage(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(select(models.TaskInstance.pool, models.TaskInstance.state,
                                  func.sum(models.TaskInstance.pool_slots))
                           .where(models.TaskInstance.state.in_(("running", "queued")))
                           .group_by(models.TaskInstance.pool, models.TaskInstance.state))
    usage: dict[str, dict[str, int]] = {}
    for pool, state, slots in rows:
        usage.setdefault(pool, {"running": 0, "queued": 0})[str(state)] = int(slots or 0)
    return usage


def pool_dict(row: models.Pool, usage: dict[str, dict[str, int]]) -> dict[str, Any]:
    used = usage.get(row.name, {"running": 0, "queued": 0})
    occupied = used["running"] + used["queued"]
    return {"name": row.name, "slots": row.slots, "description": row.description,
            "occupied_slots": occupied, "running_slots": used["running"],
            "queued_slots": used["queued"], "open_slots": max(row.slots - occupied, 0)}


def get_pool(session: Session, name: str) -> models.Pool:
    row = session.scalar(select(models.Pool).where(models.Pool.name == name))
    if row is None:
        raise ApiError(404, "Not Found", f"pool {name!r} does not exist")
    return row


# ----------------------------------------------------------------------------------- health

def health(session_factory: Any) -> tuple[dict[str, Any], int]:
    from flow.config import load_config

    threshold = float(load_config().get("scheduler", "health_threshold"))
    scheduler: dict[str, Any] = {"status": "unknown", "latest_heartbeat": None,
                                 "heartbeat_age_seconds": None}
    try:
        with session_factory() as session:
            latest = session.scalar(select(func.max(models.Job.latest_heartbeat)).where(
                models.Job.job_type.in_(("scheduler", "SchedulerJob")),
                or_(models.Job.state == "running", models.Job.end_date.is_(None))))
    except Exception as err:
        return {"status": "unhealthy", "metadatabase": {"status": f"unreachable: "
                                                                   f"{type(err).__name__}"},
                "scheduler": scheduler}, 503
    if latest is not None:
        age = (utcnow() - latest).total_seconds()
        scheduler = {"status": "healthy" if age <= threshold else "unhealthy",
                     "latest_heartbeat": latest.isoformat(), "heartbeat_age_seconds": age}
    return {"status": "healthy", "metadatabase": {"status": "healthy"},
            "scheduler": scheduler}, 200
