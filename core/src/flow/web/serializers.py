"""Rows as the JSON the API returns (and the UI's polling endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flow.secrets.masking import MASK, is_sensitive_name
from flow.store import models


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dag(row: models.DagModel) -> dict[str, Any]:
    return {"dag_id": row.dag_id, "is_paused": bool(row.is_paused),
            "is_active": bool(row.is_active),
            "owners": [o.strip() for o in (row.owners or "").split(",") if o.strip()],
            "tags": list(row.tags or []), "description": row.description,
            "schedule": row.schedule_description or "", "fileloc": row.fileloc,
            "next_dagrun": iso(row.next_dagrun), "last_parsed_at": iso(row.last_parsed_at),
            "dag_hash": row.dag_hash, "max_active_runs": row.max_active_runs,
            "max_active_tasks": row.max_active_tasks}


def task(data: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": data["task_id"], "task_type": data.get("task_type", ""),
            "trigger_rule": data.get("trigger_rule", "all_success"),
            "is_mapped": bool(data.get("is_mapped")),
            "upstream_task_ids": list(data.get("upstream_task_ids", [])),
            "downstream_task_ids": list(data.get("downstream_task_ids", [])),
            "task_group_id": data.get("task_group_id")}


def dag_run(row: models.DagRun) -> dict[str, Any]:
    duration = None
    if row.start_date and row.end_date:
        duration = (row.end_date - row.start_date).total_seconds()
    return {"dag_id": row.dag_id, "run_id": row.run_id, "logical_date": iso(row.logical_date),
            "data_interval_start": iso(row.data_interval_start),
            "data_interval_end": iso(row.data_interval_end), "run_type": row.run_type,
            "state": row.state, "conf": dict(row.conf or {}), "queued_at": iso(row.queued_at),
            "start_date": iso(row.start_date), "end_date": iso(row.end_date),
            "duration": duration, "dag_hash": row.dag_hash}


def task_instance(row: models.TaskInstance) -> dict[str, Any]:
    return {"dag_id": row.dag_id, "run_id": row.run_id, "task_id": row.task_id,
            "map_index": row.map_index, "try_number": row.try_number,
            "max_tries": row.max_tries, "state": row.state, "operator": row.operator or "",
            "pool": row.pool, "queue": row.queue, "hostname": row.hostname or "",
            "queued_at": iso(row.queued_at), "start_date": iso(row.start_date),
            "end_date": iso(row.end_date), "duration": row.duration,
            "rendered_fields": row.rendered_fields, "note": row.note}


def task_try(row: models.TaskInstanceTry) -> dict[str, Any]:
    return {"try_number": row.try_number, "state": row.state, "hostname": row.hostname or "",
            "start_date": iso(row.start_date), "end_date": iso(row.end_date),
            "duration": row.duration, "error": row.error}


def connection(conn: Any) -> dict[str, Any]:
    """A connection without its password (write-only) and with sensitive extras masked."""
    extra = conn.extra_dejson if conn.extra else None
    if extra is not None:
        extra = {k: (MASK if is_sensitive_name(k) else v) for k, v in extra.items()}
    return {"conn_id": conn.conn_id, "conn_type": conn.conn_type,
            "description": conn.description, "host": conn.host, "schema": conn.schema,
            "login": conn.login, "port": conn.port, "extra": extra,
            "has_password": bool(conn.password)}


def variable(key: str, value: str, description: str | None) -> dict[str, Any]:
    masked = is_sensitive_name(key)
    return {"key": key, "value": MASK if masked else value, "description": description,
            "masked": masked}


def event(row: models.EventLog) -> dict[str, Any]:
    return {"id": row.id, "dttm": iso(row.dttm), "actor": row.actor, "action": row.action,
            "source": row.source, "target": row.target, "dag_id": row.dag_id,
            "run_id": row.run_id, "task_id": row.task_id, "details": dict(row.details or {})}


def user(row: models.User) -> dict[str, Any]:
    return {"username": row.username, "email": row.email, "role": row.role,
            "active": bool(row.active), "created_at": iso(row.created_at),
            "last_login": iso(row.last_login)}


def import_error(row: models.ImportError_) -> dict[str, Any]:
    return {"id": row.id, "filename": row.filename, "lineno": row.lineno,
            "message": row.message, "timestamp": iso(row.timestamp)}
